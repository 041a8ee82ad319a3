//! Run a certification [`Suite`] through the switch against whatever issuer host is
//! connected, judge each answer against the case's expectations, and report: a readable
//! summary, JUnit XML for CI, Markdown for the bank. A failed case says what was expected,
//! what came back, and the STAN and F7 to find the transaction in the switch's logs.

use crate::client::{AcquirerClient, ClientError, Received};
use crate::suite::{Case, CaseKind, Suite, SuiteError};
use crate::txn::{self, Original, TxnParams};
use bytes::Bytes;
use iso8583::subfields::{FeeMode, InstallmentRequest};
use iso8583::{Message, MessageBuilder, ResponseCode, CUPS};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where and as whom to run.
#[derive(Debug, Clone)]
pub struct CertifyOptions {
    /// The switch's acquirer listener.
    pub switch: SocketAddr,
    pub switch_id: String,
    pub acquirer: String,
    /// Issuer under test: picks the suite's test cards.
    pub issuer: String,
    /// How long to wait for each answer.
    pub timeout: Duration,
}

/// One message a case sent and what came back.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub stan: Option<u32>,
    /// F7 as sent.
    pub transmission: Option<String>,
    /// F39 received, or `reject XXXXX`, or `no answer (...)`.
    pub outcome: String,
    /// Why it does not meet the expectations (empty: it does).
    pub failures: Vec<String>,
}

/// The verdict on one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub kind: &'static str,
    pub description: String,
    /// What the case expected, in words (`F39 00`, `reject 1004*`).
    pub expected: String,
    pub exchanges: Vec<Exchange>,
    /// Problems before anything was sent (bad PAN role, unbuildable message).
    pub setup_error: Option<String>,
    pub elapsed: Duration,
}

impl CaseResult {
    #[must_use]
    pub fn passed(&self) -> bool {
        self.setup_error.is_none() && self.exchanges.iter().all(|e| e.failures.is_empty())
    }

    /// Every reason the case failed, each with the STAN and F7 of its message.
    #[must_use]
    pub fn reasons(&self) -> Vec<String> {
        let mut out: Vec<String> = self.setup_error.iter().cloned().collect();
        for e in &self.exchanges {
            for f in &e.failures {
                out.push(format!(
                    "{f} [STAN {}, F7 {}]",
                    e.stan.map_or_else(|| "-".to_owned(), |s| format!("{s:06}")),
                    e.transmission.as_deref().unwrap_or("-")
                ));
            }
        }
        out
    }

    /// What came back (all exchanges).
    #[must_use]
    pub fn actual(&self) -> String {
        let outcomes: Vec<&str> = self.exchanges.iter().map(|e| e.outcome.as_str()).collect();
        if outcomes.is_empty() {
            "-".to_owned()
        } else {
            outcomes.join(", ")
        }
    }
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    pub suite: String,
    pub description: String,
    pub issuer: String,
    pub acquirer: String,
    pub switch: SocketAddr,
    /// Local time the run started.
    pub started: String,
    pub results: Vec<CaseResult>,
    pub elapsed: Duration,
}

/// What a sent message left behind for later cases.
struct Sent {
    pan: String,
    amount: i64,
    /// The request as sent (for duplicates) and the related-transaction view of it (from the
    /// answer when there is one: it carries F38).
    raw: Bytes,
    original: Original,
    answer: Option<Message>,
}

fn code_text(code: ResponseCode) -> String {
    match code.meaning() {
        Some(m) => format!("{code} ({m})"),
        None => code.to_string(),
    }
}

fn field_text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).trim_end().to_owned()
}

/// Overwrite field `n`'s encoded value in `payload` with `with` (same length).
fn corrupt(payload: &[u8], b: &MessageBuilder, n: u8, with: &[u8]) -> Result<Bytes, String> {
    let value = b
        .get(n)
        .ok_or_else(|| format!("corrupt: F{n} is not in the message"))?;
    if value.len() != with.len() {
        return Err(format!(
            "corrupt: F{n} has {} bytes, the replacement {}",
            value.len(),
            with.len()
        ));
    }
    let bitmap_len = if (65..=128).any(|f| b.get(f).is_some()) {
        16
    } else {
        8
    };
    let mut offset = iso8583::HEADER_LEN + 4 + bitmap_len;
    for f in 2..n {
        if let Some(v) = b.get(f) {
            let spec = CUPS.spec(f).ok_or("corrupt: unknown field")?;
            offset += spec.length.prefix_digits() + v.len();
        }
    }
    let spec = CUPS.spec(n).ok_or("corrupt: unknown field")?;
    offset += spec.length.prefix_digits();
    let mut out = payload.to_vec();
    out.get_mut(offset..offset + with.len())
        .ok_or("corrupt: offset outside the message")?
        .copy_from_slice(with);
    Ok(Bytes::from(out))
}

struct Runner<'a> {
    suite: &'a Suite,
    opts: &'a CertifyOptions,
    client: AcquirerClient,
    sent: HashMap<String, Vec<Sent>>,
}

/// What one message of a case is.
struct Planned {
    builder: Option<MessageBuilder>,
    raw: Bytes,
    pan: String,
    amount: i64,
}

impl Runner<'_> {
    fn params(&self, case: &Case, pan: &str, amount: i64) -> TxnParams {
        let mut p = self.client.params(pan, amount);
        if let Some(m) = &case.merchant {
            p.merchant.clone_from(m);
        }
        if let Some(t) = &case.terminal {
            p.terminal.clone_from(t);
        }
        if let Some(m) = &case.mcc {
            p.mcc.clone_from(m);
        }
        if let Some(c) = &case.currency {
            p.currency.clone_from(c);
        }
        p.pin.clone_from(&case.pin);
        p.cvn2.clone_from(&case.cvn2);
        p.expiry.clone_from(&case.expiry);
        p
    }

    /// The messages this case sends: one per repeat, or one per message of its original.
    fn plan(&self, case: &Case) -> Result<Vec<Planned>, String> {
        let originals: Vec<&Sent> = match &case.original {
            Some(o) => self
                .sent
                .get(o)
                .map(|v| v.iter().collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        if case.kind.is_related() && originals.is_empty() {
            return Err(format!(
                "original case {:?} sent nothing",
                case.original.as_deref().unwrap_or_default()
            ));
        }
        let mut out = Vec::new();
        if case.kind == CaseKind::Duplicate {
            for o in originals.iter().take(1) {
                out.push(Planned {
                    builder: None,
                    raw: o.raw.clone(),
                    pan: o.pan.clone(),
                    amount: o.amount,
                });
            }
            return Ok(out);
        }
        let resolve = |pan: &str| {
            self.suite
                .resolve_pan(case, pan, &self.opts.issuer)
                .map_err(|e| match e {
                    SuiteError::Case { reason, .. } => reason,
                    other => other.to_string(),
                })
        };
        let targets: Vec<Option<&Sent>> = if case.kind.is_related() {
            originals.into_iter().map(Some).collect()
        } else {
            (0..case.repeat.unwrap_or(1)).map(|_| None).collect()
        };
        for orig in targets {
            let pan = match (&case.pan, orig) {
                (Some(p), _) => resolve(p)?,
                (None, Some(o)) => o.pan.clone(),
                (None, None) if case.kind.is_network() => String::new(),
                (None, None) => resolve("@default")?,
            };
            let amount = case.amount.or(orig.map(|o| o.amount)).unwrap_or(
                if case.kind == CaseKind::Balance {
                    0
                } else {
                    1000
                },
            );
            let p = self.params(case, &pan, amount);
            let mut b = Self::build(case, &p, orig)?;
            for n in &case.remove {
                b.remove(*n);
            }
            let raw = b
                .build()
                .map_err(|e| format!("the request does not encode: {e}"))?;
            let raw = match &case.corrupt {
                Some(c) => corrupt(&raw, &b, c.field, c.with.as_bytes())?,
                None => raw,
            };
            out.push(Planned {
                builder: Some(b),
                raw,
                pan,
                amount,
            });
        }
        Ok(out)
    }

    fn build(case: &Case, p: &TxnParams, orig: Option<&Sent>) -> Result<MessageBuilder, String> {
        let original = || orig.map(|o| o.original).ok_or("the original sent nothing");
        let built = match case.kind {
            CaseKind::Purchase => txn::purchase(p),
            CaseKind::Installment => {
                let ip = InstallmentRequest {
                    periods: case.periods.unwrap_or(6),
                    project_code: InstallmentRequest::project_code_from(
                        case.project_code.as_deref().unwrap_or(""),
                    ),
                    fee_mode: if case.fee_mode == Some(1) {
                        FeeMode::FirstPeriod
                    } else {
                        FeeMode::Spread
                    },
                    fee_rate: case.fee_rate.unwrap_or(0),
                    subsidy_rate: case.subsidy_rate.unwrap_or(0),
                };
                txn::installment_purchase(p, &ip)
            }
            CaseKind::Balance => txn::balance_inquiry(p),
            CaseKind::Cash => txn::cash_withdrawal(p),
            CaseKind::Preauth => txn::preauth(p),
            CaseKind::PreauthVoid => txn::preauth_void(p, &original()?),
            CaseKind::Completion => txn::preauth_completion(p, &original()?),
            CaseKind::Void => txn::void(p, &original()?),
            CaseKind::Refund => txn::refund(p, &original()?),
            CaseKind::Reversal => {
                let reason = case
                    .reason
                    .as_deref()
                    .and_then(|r| r.as_bytes().try_into().ok())
                    .unwrap_or(iso8583::subfields::reason::TERMINAL_REVERSAL);
                txn::reversal(p, &original()?, reason)
            }
            CaseKind::SignOn => txn::sign_on(p),
            CaseKind::SignOff => txn::sign_off(p),
            CaseKind::Echo => txn::echo(p),
            CaseKind::Duplicate => return Err("a duplicate resends bytes".to_owned()),
        };
        built.map_err(|e| e.to_string())
    }

    fn first_answer(&self, case: &str) -> Option<&Message> {
        self.sent
            .get(case)
            .and_then(|v| v.iter().find_map(|s| s.answer.as_ref()))
    }

    fn judge(&self, case: &Case, reply: &Result<Received, ClientError>) -> (String, Vec<String>) {
        let x = &case.expect;
        let mut failures = Vec::new();
        let msg = match reply {
            Ok(Received::Message(m)) => m,
            Ok(Received::Reject { header, .. }) => {
                let got = header.reject.as_str().to_owned();
                match &x.reject {
                    Some(want) if want == "any" || got.starts_with(want.as_str()) => {}
                    Some(want) => failures.push(format!("expected reject {want}, got reject {got}")),
                    None => failures.push(format!(
                        "expected F39 {}, got a header reject {got} (the switch could not parse the message)",
                        x.code.as_deref().unwrap_or("-")
                    )),
                }
                return (format!("reject {got}"), failures);
            }
            Ok(Received::Undecodable { error, .. }) => {
                failures.push(format!("the answer does not decode: {error}"));
                return ("undecodable".to_owned(), failures);
            }
            Err(e) => {
                failures.push(format!(
                    "expected {}, got no answer: {e}",
                    expected_text(case)
                ));
                return (format!("no answer ({e})"), failures);
            }
        };
        let got = msg.response_code();
        let outcome = got.map_or_else(|| "no F39".to_owned(), |c| c.to_string());
        if let Some(want) = &x.reject {
            failures.push(format!(
                "expected reject {want}, got an answer with F39 {outcome}"
            ));
        }
        if let Some(want) = &x.code {
            let want_code = ResponseCode::parse(want.as_bytes());
            if got != want_code {
                let got_text = got.map_or_else(|| "no F39".to_owned(), code_text);
                let want_text = want_code.map_or_else(|| want.clone(), code_text);
                let mut line = format!("expected F39 {want_text}, got {got_text}");
                if let Some(f44) = msg.field(44) {
                    let _ = write!(line, "; F44 {:?}", field_text(f44));
                }
                failures.push(line);
            }
        }
        for n in &x.present {
            if !msg.has(*n) {
                failures.push(format!("expected F{n} in the answer, it is missing"));
            }
        }
        for n in &x.absent {
            if msg.has(*n) {
                failures.push(format!("expected no F{n} in the answer, it is present"));
            }
        }
        for (n, want) in &x.fields {
            let n: u8 = n.parse().unwrap_or(0);
            match msg.field(n) {
                Some(v) if field_text(v) == want.trim_end() => {}
                Some(v) => {
                    failures.push(format!("F{n}: expected {want:?}, got {:?}", field_text(v)))
                }
                None => failures.push(format!("F{n}: expected {want:?}, it is missing")),
            }
        }
        if let Some(f57) = &x.f57 {
            match msg.installment_response() {
                Some(Ok(ip)) => {
                    let mut check = |what: &str, want: Option<i64>, got: i64| {
                        if let Some(w) = want {
                            if w != got {
                                failures.push(format!("F57 IP {what}: expected {w}, got {got}"));
                            }
                        }
                    };
                    check(
                        "first installment amount",
                        f57.first_amount,
                        ip.first_amount,
                    );
                    check("cardholder fee", f57.cardholder_fee, ip.cardholder_fee);
                    check(
                        "currency",
                        f57.currency.map(i64::from),
                        i64::from(ip.currency),
                    );
                    check(
                        "subsidy rate (x 10^4)",
                        f57.subsidy_rate.map(i64::from),
                        i64::from(ip.subsidy_rate),
                    );
                }
                Some(Err(e)) => failures.push(format!("F57 IP does not parse: {e}")),
                None => failures.push("expected F57 IP in the answer, it is missing".to_owned()),
            }
        }
        if let (Some(from), Some(delta)) = (&x.balance_from, x.balance_delta) {
            let balance = |m: &Message| {
                m.balances()
                    .and_then(Result::ok)
                    .and_then(|b| b.first().map(|r| r.amount))
            };
            match (self.first_answer(from).and_then(balance), balance(msg)) {
                (Some(before), Some(now)) if now - before == delta => {}
                (Some(before), Some(now)) => failures.push(format!(
                    "balance moved by {} since case {from:?} ({before} -> {now}), expected {delta}",
                    now - before
                )),
                (None, _) => {
                    failures.push(format!("case {from:?} has no F54 balance to compare with"))
                }
                (_, None) => {
                    failures.push("expected F54 balance in the answer, it is missing".to_owned())
                }
            }
        }
        if let Some(earlier) = &x.same_as {
            match self.first_answer(earlier) {
                Some(first) => {
                    if first.response_code() != got {
                        failures.push(format!(
                            "expected the same answer as case {earlier:?} (F39 {}), got F39 {outcome}",
                            first
                                .response_code()
                                .map_or_else(|| "-".to_owned(), |c| c.to_string())
                        ));
                    }
                    if first.field(38) != msg.field(38) {
                        failures.push(format!("expected the same F38 as case {earlier:?}"));
                    }
                }
                None => failures.push(format!("case {earlier:?} got no answer to compare with")),
            }
        }
        (outcome, failures)
    }

    async fn run_case(&mut self, case: &Case) -> CaseResult {
        let started = Instant::now();
        let mut result = CaseResult {
            name: case.name.clone(),
            kind: case.kind.name(),
            description: case.description.clone(),
            expected: expected_text(case),
            exchanges: Vec::new(),
            setup_error: None,
            elapsed: Duration::ZERO,
        };
        let planned = match self.plan(case) {
            Ok(p) => p,
            Err(e) => {
                result.setup_error = Some(e);
                return result;
            }
        };
        let mut sent = Vec::new();
        for p in planned {
            let decoded = Message::decode(p.raw.clone()).ok();
            let stan = decoded.as_ref().and_then(Message::stan).or_else(|| {
                p.builder
                    .as_ref()
                    .and_then(|b| b.get(11))
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            });
            let transmission = decoded
                .as_ref()
                .and_then(|m| m.field(7))
                .or_else(|| p.builder.as_ref().and_then(|b| b.get(7)))
                .map(|v| String::from_utf8_lossy(v).into_owned());
            let reply =
                tokio::time::timeout(self.opts.timeout, self.client.send_raw(p.raw.clone()))
                    .await
                    .unwrap_or(Err(ClientError::Timeout(self.opts.timeout)));
            let (outcome, failures) = self.judge(case, &reply);
            let answer = match reply {
                Ok(Received::Message(m)) => Some(m),
                _ => None,
            };
            let original = answer
                .as_ref()
                .filter(|a| a.has(7) && a.has(11) && a.has(32) && a.has(33))
                .and_then(Original::from_message)
                .or_else(|| decoded.as_ref().and_then(Original::from_message))
                .or_else(|| p.builder.as_ref().and_then(Original::from_builder));
            // The answer's F38 is the original's authorisation code (voids, completions).
            let original = original.map(|mut o| {
                if let Some(code) = answer
                    .as_ref()
                    .and_then(|a| a.field(38))
                    .and_then(|c| <[u8; 6]>::try_from(c).ok())
                {
                    o.auth_code = Some(code);
                }
                o
            });
            result.exchanges.push(Exchange {
                stan,
                transmission,
                outcome,
                failures,
            });
            if let Some(original) = original {
                sent.push(Sent {
                    pan: p.pan,
                    amount: p.amount,
                    raw: p.raw,
                    original,
                    answer,
                });
            }
        }
        self.sent.insert(case.name.clone(), sent);
        result.elapsed = started.elapsed();
        result
    }
}

/// The expectation in words.
#[must_use]
pub fn expected_text(case: &Case) -> String {
    let x = &case.expect;
    let mut parts = Vec::new();
    if let Some(c) = &x.code {
        parts.push(format!("F39 {c}"));
    }
    if let Some(r) = &x.reject {
        parts.push(format!("reject {r}"));
    }
    if let Some(s) = &x.same_as {
        parts.push(format!("same as {s}"));
    }
    if !x.present.is_empty() {
        let f: Vec<String> = x.present.iter().map(|n| format!("F{n}")).collect();
        parts.push(format!("with {}", f.join(" ")));
    }
    if x.f57.is_some() {
        parts.push("F57 values".to_owned());
    }
    if let Some(d) = x.balance_delta {
        parts.push(format!("balance {d:+}"));
    }
    parts.join(", ")
}

/// Connect to the switch as `opts.acquirer` and run every case of `suite` in order.
pub async fn run(suite: &Suite, opts: &CertifyOptions) -> anyhow::Result<Report> {
    let client = AcquirerClient::connect(opts.switch, &opts.acquirer, &opts.switch_id).await?;
    let started = chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string();
    let clock = Instant::now();
    let mut runner = Runner {
        suite,
        opts,
        client,
        sent: HashMap::new(),
    };
    let mut results = Vec::with_capacity(suite.cases.len());
    for case in &suite.cases {
        let r = runner.run_case(case).await;
        tracing::info!(case = %r.name, passed = r.passed(), "case done");
        results.push(r);
    }
    runner.client.close().await;
    Ok(Report {
        suite: suite.name.clone(),
        description: suite.description.clone(),
        issuer: opts.issuer.clone(),
        acquirer: opts.acquirer.clone(),
        switch: opts.switch,
        started,
        results,
        elapsed: clock.elapsed(),
    })
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Report {
    #[must_use]
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| !r.passed()).count()
    }

    #[must_use]
    pub fn passed(&self) -> bool {
        self.failed() == 0
    }

    /// The console summary: one line per case, reasons under each failure.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut out = format!(
            "suite {} against issuer {} (acquirer {}, switch {})\n",
            self.suite, self.issuer, self.acquirer, self.switch
        );
        for r in &self.results {
            let mark = if r.passed() { "PASS" } else { "FAIL" };
            let _ = writeln!(
                out,
                "  {mark}  {:<40} {:<12} expected {:<28} got {}",
                r.name,
                r.kind,
                r.expected,
                r.actual()
            );
            for reason in r.reasons() {
                let _ = writeln!(out, "          - {reason}");
            }
        }
        let _ = writeln!(
            out,
            "{} cases: {} passed, {} failed ({:.1} s)",
            self.results.len(),
            self.results.len() - self.failed(),
            self.failed(),
            self.elapsed.as_secs_f64()
        );
        out
    }

    /// JUnit XML (one testsuite, one testcase per case).
    #[must_use]
    pub fn junit_xml(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3}\" timestamp=\"{}\">",
            xml_escape(&self.suite),
            self.results.len(),
            self.failed(),
            self.elapsed.as_secs_f64(),
            xml_escape(&self.started)
        );
        let _ = writeln!(
            out,
            "  <properties><property name=\"issuer\" value=\"{}\"/><property name=\"acquirer\" value=\"{}\"/><property name=\"switch\" value=\"{}\"/></properties>",
            xml_escape(&self.issuer),
            xml_escape(&self.acquirer),
            self.switch
        );
        for r in &self.results {
            let _ = write!(
                out,
                "  <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
                xml_escape(&self.suite),
                xml_escape(&self.issuer),
                xml_escape(&r.name),
                r.elapsed.as_secs_f64()
            );
            if r.passed() {
                out.push_str("/>\n");
            } else {
                let reasons = r.reasons();
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"{}\" type=\"{}\">{}</failure>\n  </testcase>",
                    xml_escape(reasons.first().map_or("failed", String::as_str)),
                    r.kind,
                    xml_escape(&reasons.join("\n"))
                );
            }
        }
        out.push_str("</testsuite>\n");
        out
    }

    /// The Markdown report for the bank.
    #[must_use]
    pub fn markdown(&self) -> String {
        let mut out = format!("# Certification report: suite `{}`\n\n", self.suite);
        if !self.description.is_empty() {
            let _ = writeln!(out, "{}\n", self.description.trim());
        }
        let _ = writeln!(
            out,
            "- Issuer under test: `{}`\n- Acquirer: `{}`\n- Switch: `{}`\n- Run at: {}\n- Result: **{}** ({} of {} cases passed)\n",
            self.issuer,
            self.acquirer,
            self.switch,
            self.started,
            if self.passed() { "PASSED" } else { "FAILED" },
            self.results.len() - self.failed(),
            self.results.len()
        );
        out.push_str("| # | Case | Kind | Expected | Actual | STAN | F7 | Result |\n");
        out.push_str("|---|---|---|---|---|---|---|---|\n");
        for (i, r) in self.results.iter().enumerate() {
            let stans: Vec<String> = r
                .exchanges
                .iter()
                .filter_map(|e| e.stan.map(|s| format!("{s:06}")))
                .collect();
            let f7: Vec<&str> = r
                .exchanges
                .iter()
                .filter_map(|e| e.transmission.as_deref())
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                i + 1,
                md_cell(&r.name),
                r.kind,
                md_cell(&r.expected),
                md_cell(&r.actual()),
                stans.join(" "),
                f7.first().copied().unwrap_or("-"),
                if r.passed() { "pass" } else { "**FAIL**" }
            );
        }
        let failed: Vec<&CaseResult> = self.results.iter().filter(|r| !r.passed()).collect();
        if !failed.is_empty() {
            out.push_str("\n## Failures\n");
            for r in failed {
                let _ = writeln!(out, "\n### {}\n", r.name);
                if !r.description.is_empty() {
                    let _ = writeln!(out, "{}\n", r.description.trim());
                }
                for reason in r.reasons() {
                    let _ = writeln!(out, "- {}", md_cell(&reason));
                }
            }
        }
        out
    }

    /// Write `<suite>-<issuer>.xml` and `<suite>-<issuer>.md` into `dir` (created if
    /// missing); returns both paths.
    pub fn write(
        &self,
        dir: &std::path::Path,
    ) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let stem = format!("{}-{}", self.suite, self.issuer);
        let xml = dir.join(format!("{stem}.xml"));
        let md = dir.join(format!("{stem}.md"));
        std::fs::write(&xml, self.junit_xml())?;
        std::fs::write(&md, self.markdown())?;
        Ok((xml, md))
    }
}
