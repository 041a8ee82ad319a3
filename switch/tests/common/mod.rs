//! Test harness: a real switch on 127.0.0.1:0 with a manual clock, and raw-socket peers
//! that speak the wire format through the codec (full control over timing and content).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use iso8583::{Frame, FrameCodec, Header, InstId, Message, MessageBuilder, Mti, Packet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use switch::clock::ManualClock;
use switch::config::Config;
use switch::server::{start, StartOptions, SwitchHandle};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

pub const SWITCH: &str = "00010000";
pub const ACQ: &str = "01030000";
pub const ISS: &str = "03010000";
/// A PAN routed to ISS.
pub const PAN: &str = "6222021234567890123";
/// A PAN routed to ISS from a range not open for installments.
pub const PAN_NO_INSTALLMENT: &str = "6222031234567890";
/// A guard against hanging forever when a test fails; never used to wait for work.
pub const GUARD: Duration = Duration::from_secs(10);

pub fn write_config(dir: &Path, extra_acquirer: &str) -> Config {
    write_config_with(dir, extra_acquirer, "")
}

pub fn write_config_with(dir: &Path, extra_acquirer: &str, extra_issuer: &str) -> Config {
    write_config_full(dir, &Extras::new(extra_acquirer, extra_issuer))
}

/// Keys added to the test configuration. A default key is left out where the extra sets it.
#[derive(Clone, Default)]
pub struct Extras {
    pub switch: String,
    pub acquirer: String,
    pub issuer: String,
    /// `[journal]` keys (the default journal is `durability = "buffered"`).
    pub journal: String,
}

impl Extras {
    pub fn new(acquirer: &str, issuer: &str) -> Self {
        Self {
            switch: String::new(),
            acquirer: acquirer.into(),
            issuer: issuer.into(),
            journal: String::new(),
        }
    }

    /// For tests that move the clock by days: no idle close, no echoes.
    pub fn days(issuer: &str) -> Self {
        Self {
            switch: "idle_timeout_secs = 604800".into(),
            acquirer: String::new(),
            issuer: format!("echo_interval_secs = 0\n{issuer}"),
            journal: String::new(),
        }
    }
}

/// `key = value` from `default` unless `extra` sets the key itself.
fn default_key(extra: &str, line: &str) -> String {
    let key = line.split('=').next().unwrap_or_default().trim();
    if extra.lines().any(|l| l.trim_start().starts_with(key)) {
        String::new()
    } else {
        line.to_owned()
    }
}

pub fn write_config_full(dir: &Path, extras: &Extras) -> Config {
    let (extra_switch, extra_acquirer, extra_issuer, extra_journal) = (
        &extras.switch,
        &extras.acquirer,
        &extras.issuer,
        &extras.journal,
    );
    let durability = default_key(extra_journal, "durability = \"buffered\"");
    let idle = default_key(extra_switch, "idle_timeout_secs = 180");
    // The day's tables keep nothing in memory: every entry is written out as it is made,
    // so every test below finds its originals, keys and reversal answers on disk
    // (`switch::daytable`'s spill path; the in-memory path has its unit tests).
    let spill = default_key(extra_switch, "day_tables_memory = 1");
    let echo = default_key(extra_issuer, "echo_interval_secs = 60");
    let echo_timeout = default_key(extra_issuer, "echo_timeout_secs = 10");
    // `[registry]` only when the test wrote the files (registry rules are off otherwise).
    let registry = if dir.join("merchants.csv").exists() {
        "[registry]\nmerchants = \"merchants.csv\"\nterminals = \"terminals.csv\"\nlimits = \"limits.csv\""
    } else {
        ""
    };
    std::fs::write(
        dir.join("bins.csv"),
        "prefix,issuer,card_type,installment\n622202,03010000,debit,Y\n622203,03010000,debit,N\n625800,03020000,credit,N\n",
    )
    .unwrap();
    let toml = format!(
        r#"
[switch]
id = "00010000"
keepalive_send_secs = 120
{idle}
{spill}
{extra_switch}
[listeners]
acquirer = "127.0.0.1:0"
issuer = "127.0.0.1:0"
admin = "127.0.0.1:0"
[journal]
dir = "journal"
{durability}
{extra_journal}
[routing]
bin_table = "bins.csv"
{registry}
[[institution]]
id = "01030000"
name = "Test Acquirer"
roles = ["acquirer"]
{extra_acquirer}
[[institution]]
id = "03010000"
name = "Test Issuer"
roles = ["issuer"]
timeout_ms = 20000
{echo}
{echo_timeout}
installment = true
{extra_issuer}
[[institution]]
id = "03020000"
name = "Issuer Never Connected"
roles = ["issuer"]
"#
    );
    let path = dir.join("switch.toml");
    std::fs::write(&path, &toml).unwrap();
    Config::load(&path).unwrap()
}

/// Today at `h:m:s` local time, in Unix ms.
pub fn local_ms(h: u32, m: u32, s: u32) -> i64 {
    use switch::clock::Clock;
    ManualClock::today_at(h, m, s).now_millis()
}

/// Yield until `cond` holds, re-checking on each scheduler turn (bounded by the guard).
pub async fn wait_until(cond: impl Fn() -> bool) {
    tokio::time::timeout(GUARD, async {
        while !cond() {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("condition not reached");
}

/// The admin API's `/advices` listing, parsed.
pub async fn pending_advices(admin: std::net::SocketAddr) -> serde_json::Value {
    let resp = http(admin, "GET", "/advices").await;
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
}

/// Wait (bounded by the guard) until the switch has no advice pending: an answer the test
/// sent has been taken, or an advice given up. Before moving the clock past an advice's
/// retry, so the switch does not resend one whose answer is still in its socket.
pub async fn no_advice_pending(admin: std::net::SocketAddr, why: &str) {
    tokio::time::timeout(GUARD, async {
        while pending_advices(admin).await["pending"] != 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("an advice still pending: {why}"));
}

pub struct TestSwitch {
    pub handle: Option<SwitchHandle>,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    extras: Extras,
}

impl TestSwitch {
    pub fn start() -> Self {
        Self::start_with("")
    }

    pub fn start_with(extra_acquirer: &str) -> Self {
        Self::start_config(extra_acquirer, "")
    }

    pub fn start_config(extra_acquirer: &str, extra_issuer: &str) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), extra_acquirer, extra_issuer)
    }

    /// Start with the given directory (tests may put registry files in it first).
    pub fn start_in(dir: tempfile::TempDir, extra_acquirer: &str, extra_issuer: &str) -> Self {
        Self::start_full(dir, Extras::new(extra_acquirer, extra_issuer), None)
    }

    /// Start with the manual clock at `start_ms` (Unix ms).
    pub fn start_at(start_ms: i64) -> Self {
        Self::start_full(
            tempfile::tempdir().unwrap(),
            Extras::default(),
            Some(start_ms),
        )
    }

    /// Start with these configuration extras (and the given directory).
    pub fn start_extras(dir: tempfile::TempDir, extras: Extras) -> Self {
        Self::start_full(dir, extras, None)
    }

    fn start_full(dir: tempfile::TempDir, extras: Extras, start_ms: Option<i64>) -> Self {
        let config = write_config_full(dir.path(), &extras);
        // Noon local time by default: tests that move the clock by seconds or minutes never
        // cross the 23:00 cut-over by accident.
        let clock = ManualClock::new(start_ms.unwrap_or_else(|| local_ms(12, 0, 0)));
        let handle = start(
            config,
            StartOptions {
                clock: Arc::new(clock.clone()),
                tick_ms: 5,
            },
        )
        .unwrap();
        Self {
            handle: Some(handle),
            clock,
            dir,
            extras,
        }
    }

    /// Start again on the same journal directory and configuration.
    pub fn restart(&mut self) {
        self.handle.take().unwrap().shutdown().unwrap();
        let config = write_config_full(self.dir.path(), &self.extras);
        let handle = start(
            config,
            StartOptions {
                clock: Arc::new(self.clock.clone()),
                tick_ms: 5,
            },
        )
        .unwrap();
        self.handle = Some(handle);
    }

    /// Move the clock `days` ahead and through the cut-over that follows: each of `peers`
    /// (signed-on links) receives the 0820/201 and 0820/202 announcements, checked here.
    pub async fn pass_days(&self, days: u64, peers: &mut [&mut Peer]) {
        let shared = self.h().shared.clone();
        self.clock.advance(Duration::from_secs(days * 86_400));
        wait_until(|| shared.day.closing().is_some()).await;
        for p in peers.iter_mut() {
            let m = p.recv().await;
            assert_eq!(m.network_code(), Some(201), "cut-over start announced");
        }
        self.clock.advance(Duration::from_secs(3_600));
        wait_until(|| shared.day.closing().is_none()).await;
        for p in peers.iter_mut() {
            let m = p.recv().await;
            assert_eq!(m.network_code(), Some(202), "cut-over end announced");
        }
    }

    pub fn h(&self) -> &SwitchHandle {
        self.handle.as_ref().unwrap()
    }

    pub async fn acquirer(&self) -> Peer {
        Peer::connect(self.h().acquirer_addr, ACQ).await
    }

    /// An issuer link, connected and signed on.
    pub async fn issuer(&self) -> Peer {
        let mut p = Peer::connect(self.h().issuer_addr, ISS).await;
        let resp = p.network(1).await;
        assert_eq!(resp.response_code().unwrap().as_str(), "00");
        p
    }

    pub fn shutdown(mut self) {
        self.handle.take().unwrap().shutdown().unwrap();
    }
}

impl Drop for TestSwitch {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.shutdown();
        }
    }
}

/// One raw link to the switch.
pub struct Peer {
    pub framed: Framed<TcpStream, FrameCodec>,
    pub id: InstId,
    stan: u32,
}

impl Peer {
    pub async fn connect(addr: std::net::SocketAddr, id: &str) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self {
            framed: Framed::new(stream, FrameCodec::default()),
            id: InstId::new(id).unwrap(),
            stan: 0,
        }
    }

    pub fn header(&self) -> Header {
        Header::new(InstId::new(SWITCH).unwrap(), self.id)
    }

    pub async fn send(&mut self, payload: Bytes) {
        self.framed.send(Frame::Message(payload)).await.unwrap();
    }

    pub async fn send_frame(&mut self, frame: Frame) {
        self.framed.send(frame).await.unwrap();
    }

    /// Next frame (keep-alives included), or panic after the guard time.
    pub async fn next_frame(&mut self) -> Frame {
        tokio::time::timeout(GUARD, self.framed.next())
            .await
            .expect("no frame within the guard time")
            .expect("link closed")
            .unwrap()
    }

    /// Next message, skipping keep-alives.
    pub async fn recv(&mut self) -> Message {
        loop {
            if let Frame::Message(b) = self.next_frame().await {
                match Packet::decode(b).unwrap() {
                    Packet::Message(m) => return m,
                    Packet::Reject { header, .. } => panic!("unexpected reject {}", header.reject),
                }
            }
        }
    }

    pub async fn recv_packet(&mut self) -> Packet {
        loop {
            if let Frame::Message(b) = self.next_frame().await {
                return Packet::decode(b).unwrap();
            }
        }
    }

    /// Whether the switch closed the link (read returns end of stream or an error).
    pub async fn closed(&mut self) -> bool {
        loop {
            match tokio::time::timeout(GUARD, self.framed.next())
                .await
                .expect("link neither closed nor answered")
            {
                None | Some(Err(_)) => return true,
                Some(Ok(Frame::KeepAlive)) => {}
                Some(Ok(Frame::Message(_))) => return false,
            }
        }
    }

    pub fn next_stan(&mut self) -> u32 {
        self.stan += 1;
        self.stan
    }

    pub async fn network(&mut self, code: u16) -> Message {
        let stan = self.next_stan();
        let mut b = MessageBuilder::new(Mti::NETWORK_REQUEST, self.header());
        b.set(7, "1121093000")
            .set_numeric(11, u64::from(stan))
            .set(33, self.id.as_bytes())
            .set_numeric(70, u64::from(code));
        self.send(b.build().unwrap()).await;
        self.recv().await
    }

    /// A purchase request from this acquirer.
    pub fn purchase(&mut self, pan: &str, amount: u64) -> MessageBuilder {
        let stan = self.next_stan();
        let mut b = MessageBuilder::new(Mti::FINANCIAL_REQUEST, self.header());
        b.header_mut().user_info = 0x5A;
        b.set(2, pan)
            .set(3, "000000")
            .set_numeric(4, amount)
            .set(7, "1121093000")
            .set_numeric(11, u64::from(stan))
            .set(12, "093000")
            .set(13, "1121")
            .set(18, "5411")
            .set(22, "051")
            .set(25, "00")
            .set(32, self.id.as_bytes())
            .set(33, self.id.as_bytes())
            .set_text(37, &format!("{stan:012}"))
            .set(41, "TERM0001")
            .set(42, "MERCHANT0000001")
            .set(49, "156")
            .set(60, "000005000300000");
        b
    }

    /// Answer a forwarded request as the issuer would.
    pub async fn answer(&mut self, req: &Message, code: &str) {
        let mut b = MessageBuilder::response_to(
            req,
            &[
                2, 3, 4, 7, 11, 12, 13, 15, 18, 25, 32, 33, 37, 41, 42, 49, 60, 100,
            ],
            iso8583::ResponseCode::parse(code.as_bytes()).unwrap(),
        );
        if code == "00" {
            b.set(38, "A1B2C3");
        }
        self.send(b.build().unwrap()).await;
    }
}

/// A purchase that the issuer `iss` answers with `issuer_code`; returns the code the
/// acquirer got back.
pub async fn through_issuer(
    acq: &mut Peer,
    iss: &mut Peer,
    amount: u64,
    issuer_code: &str,
) -> String {
    let m = acq.purchase(PAN, amount).build().unwrap();
    acq.send(m).await;
    let fwd = iss.recv().await;
    iss.answer(&fwd, issuer_code).await;
    acq.recv()
        .await
        .response_code()
        .unwrap()
        .as_str()
        .to_owned()
}

/// A related request (void, refund, reversal) for `orig` from the same terminal.
pub fn related(acq: &mut Peer, mti: Mti, pc: &str, amount: u64, orig: &Message) -> MessageBuilder {
    let stan = acq.next_stan();
    let mut b = MessageBuilder::new(mti, acq.header());
    for n in [2u8, 18, 22, 25, 32, 33, 41, 42, 49, 60] {
        if let Some(v) = orig.field(n) {
            b.set(n, v);
        }
    }
    let od = iso8583::subfields::OriginalData::new(
        orig.mti(),
        orig.stan().unwrap(),
        orig.transmission_time().unwrap(),
        &orig.acquirer_id().unwrap(),
        &orig.forwarding_id().unwrap(),
    );
    b.set(3, pc)
        .set_numeric(4, amount)
        .set(7, "1121093500")
        .set_numeric(11, u64::from(stan))
        .set_text(37, &format!("{stan:012}"))
        .set(90, od.encode());
    b
}

pub fn void(acq: &mut Peer, orig: &Message, amount: u64) -> MessageBuilder {
    related(acq, Mti::FINANCIAL_REQUEST, "200000", amount, orig)
}

pub fn refund(acq: &mut Peer, orig: &Message, amount: u64) -> MessageBuilder {
    related(acq, Mti::FINANCIAL_ADVICE, "200000", amount, orig)
}

pub fn reversal(acq: &mut Peer, orig: &Message, amount: u64) -> MessageBuilder {
    let mut b = related(acq, Mti::REVERSAL_ADVICE, "000000", amount, orig);
    b.set(60, "435105000300000");
    b
}

/// One HTTP/1.1 request to the admin endpoint; the whole answer (status line, headers, body).
pub async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(GUARD, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

/// The registry files of SPEC 9 rules 3 and 4 in `dir`: merchant `MERCHANT0000001` (MCC
/// 5411, `categories`) with terminal `TERM0001`, and one terminal limit row.
pub fn write_registry(dir: &Path, categories: &str, limit_row: &str) {
    std::fs::write(
        dir.join("merchants.csv"),
        format!(
            "acquirer,merchant_id,name,mcc,status,categories,extra_mccs\n\
             01030000,MERCHANT0000001,Shop,5411,active,{categories},\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("terminals.csv"),
        "acquirer,merchant_id,terminal_id,status,categories\n\
         01030000,MERCHANT0000001,TERM0001,active,*\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("limits.csv"),
        format!(
            "scope,merchant_id,terminal_id,categories,single_max,daily_amount_max,daily_count_max\n{limit_row}\n"
        ),
    )
    .unwrap();
}

/// A purchase the issuer `iss` approves: the request as sent, as forwarded to the issuer,
/// and the acquirer's answer (asserted `00`).
pub async fn approved_purchase(
    acq: &mut Peer,
    iss: &mut Peer,
    pan: &str,
    amount: u64,
) -> (Message, Message, Message) {
    let m = acq.purchase(pan, amount).build().unwrap();
    let sent = Message::decode(m.clone()).unwrap();
    acq.send(m).await;
    let fwd = iss.recv().await;
    iss.answer(&fwd, "00").await;
    let answer = acq.recv().await;
    assert_eq!(answer.response_code().unwrap().as_str(), "00");
    (sent, fwd, answer)
}
