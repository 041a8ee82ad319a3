//! The issuer's answer to one message, as a plain function (no I/O but the card accounts'
//! state): rules, card accounts, balance inquiry, installment plans and fees, reversals and
//! network management.

use crate::accounts::{CardType, Ledger, LedgerAnswer};
use crate::rules::{Decision, Rules};
use crate::Behaviour;
use bytes::Bytes;
use iso8583::subfields::Balance;
use iso8583::{EncodeError, Message, Mti, ResponseCode};
use std::time::Duration;

/// Fields echoed from a financial/authorisation request or a reversal into its answer.
pub const ECHO_FIELDS: &[u8] = &[
    2, 3, 4, 7, 11, 12, 13, 15, 18, 25, 32, 33, 37, 41, 42, 49, 60, 100,
];

/// Fields echoed from an `0820` into its `0830`.
pub const NETWORK_ECHO_FIELDS: &[u8] = &[7, 11, 32, 33, 70, 100];

/// How a message was handled (for statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A `0100`/`0200`/`0220` answered `00`.
    Approved,
    /// A `0100`/`0200`/`0220` answered with another code.
    Declined(ResponseCode),
    /// A reversal (`0400`/`0420`) answered.
    Reversal,
    /// An `0820` from the switch answered.
    Network,
    /// Not answered on purpose (rules or behaviour).
    Unanswered,
    /// Not a request (or an MTI the issuer does not handle): ignored.
    Ignored,
}

/// The answer to one message.
pub struct Answer {
    pub outcome: Outcome,
    /// The response to send, if any.
    pub response: Option<Reply>,
    /// Wait this long before sending it.
    pub delay: Duration,
}

/// A response to a request: the request's echoed fields, F39, and the issuer's own F38,
/// F54 and F57. [`Reply::build`] encodes it by rewriting the request, copying runs of its
/// encoded fields as they are. Building it field by field (`MessageBuilder::response_to`,
/// the same bytes) was a third of the simulator's CPU under load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Fields copied from the request when it has them.
    pub echo: &'static [u8],
    pub code: ResponseCode,
    /// F38.
    pub auth_code: Option<[u8; 6]>,
    /// F54 (a balance inquiry).
    pub balance: Option<Vec<u8>>,
    /// F57 `IP` (an approved installment).
    pub installment: Option<Vec<u8>>,
}

impl Reply {
    fn new(echo: &'static [u8], code: ResponseCode) -> Self {
        Self {
            echo,
            code,
            auth_code: None,
            balance: None,
            installment: None,
        }
    }

    /// The frame payload answering `req`.
    pub fn build(&self, req: &Message) -> Result<Bytes, EncodeError> {
        let mut r = req
            .rewrite()
            .header(req.header().response())
            .mti(req.mti().response())
            .keep_only(self.echo)
            .set(39, &self.code.0);
        if let Some(a) = &self.auth_code {
            r = r.set(38, a);
        }
        if let Some(b) = &self.balance {
            r = r.set(54, b);
        }
        if let Some(ip) = &self.installment {
            r = r.set(57, ip);
        }
        r.finish()
    }
}

impl Answer {
    fn none(outcome: Outcome) -> Self {
        Self {
            outcome,
            response: None,
            delay: Duration::ZERO,
        }
    }
}

/// Answer `req` per `rules` and `behaviour`, without card accounts (every card has
/// `rules.balance` and is eligible for installments). `auth_code` is used as F38 when
/// approving; `roll` is a uniform random number in `[0, 1)` for the drop rate.
#[must_use]
pub fn answer(
    req: &Message,
    rules: &Rules,
    behaviour: &Behaviour,
    auth_code: [u8; 6],
    roll: f64,
) -> Answer {
    answer_with(req, rules, behaviour, None, auth_code, roll)
}

/// [`answer`] with the card accounts of `ledger` (when given): status, expiry, PIN, CVN2,
/// balance and installment eligibility per card; balances move.
#[must_use]
pub fn answer_with(
    req: &Message,
    rules: &Rules,
    behaviour: &Behaviour,
    ledger: Option<&Ledger>,
    auth_code: [u8; 6],
    roll: f64,
) -> Answer {
    let mti = req.mti();
    if !mti.is_request() {
        return Answer::none(Outcome::Ignored);
    }
    match mti.class() {
        1 | 2 => financial(req, rules, ledger, auth_code, roll),
        4 => {
            if !behaviour.answer_reversals {
                return Answer::none(Outcome::Unanswered);
            }
            if let Some(ledger) = ledger {
                let effect = ledger.reverse(req);
                tracing::debug!(stan = ?req.stan(), ?effect, "reversal");
            }
            Answer {
                outcome: Outcome::Reversal,
                response: Some(Reply::new(ECHO_FIELDS, ResponseCode::APPROVED)),
                delay: Duration::ZERO,
            }
        }
        8 => {
            if req.network_code() == Some(301) && !behaviour.answer_echoes {
                return Answer::none(Outcome::Unanswered);
            }
            Answer {
                outcome: Outcome::Network,
                response: Some(Reply::new(NETWORK_ECHO_FIELDS, ResponseCode::APPROVED)),
                delay: Duration::ZERO,
            }
        }
        _ => Answer::none(Outcome::Ignored),
    }
}

fn financial(
    req: &Message,
    rules: &Rules,
    ledger: Option<&Ledger>,
    auth_code: [u8; 6],
    roll: f64,
) -> Answer {
    let code = match rules.decide(req.pan(), req.amount(), roll) {
        Decision::Silent => return Answer::none(Outcome::Unanswered),
        Decision::Answer(code) => code,
    };
    let decided = if !code.is_approved() {
        LedgerAnswer {
            code,
            auth_code: None,
            balance: None,
            installment: None,
            reason: "rules",
            replayed: false,
        }
    } else if let Some(ledger) = ledger {
        ledger.authorize(req, &rules.installments, auth_code)
    } else {
        stateless(req, rules, auth_code)
    };
    let mut reply = Reply::new(ECHO_FIELDS, decided.code);
    if decided.code.is_approved() {
        reply.auth_code = Some(decided.auth_code.unwrap_or(auth_code));
        if let Some((card_type, amount)) = decided.balance {
            let record = Balance {
                account_type: if card_type == CardType::Credit {
                    *b"30"
                } else {
                    *b"10"
                },
                amount_type: *b"02",
                currency: currency(req),
                amount,
            };
            reply.balance = Some(Balance::encode_all(&[record]));
        }
        if let Some(ip) = &decided.installment {
            reply.installment = Some(ip.encode());
        }
    }
    Answer {
        outcome: if decided.code.is_approved() {
            Outcome::Approved
        } else {
            Outcome::Declined(decided.code)
        },
        response: Some(reply),
        delay: rules.delay,
    }
}

fn currency(req: &Message) -> [u8; 3] {
    req.field(49)
        .and_then(|c| c.try_into().ok())
        .unwrap_or(*b"156")
}

/// Without accounts: F54 from `rules.balance` for a balance inquiry, F57 for an installment
/// (every cardholder eligible), or the installment plan's decline.
fn stateless(req: &Message, rules: &Rules, auth_code: [u8; 6]) -> LedgerAnswer {
    let mut a = LedgerAnswer {
        code: ResponseCode::APPROVED,
        auth_code: Some(auth_code),
        balance: None,
        installment: None,
        reason: "approved",
        replayed: false,
    };
    let processing = req.processing_code().unwrap_or(*b"000000");
    if req.mti().class() == 2 && processing.starts_with(b"30") {
        a.balance = Some((CardType::Debit, rules.balance));
        return a;
    }
    let is_purchase = processing.starts_with(b"00");
    if req.mti() == Mti::FINANCIAL_REQUEST && is_purchase && req.pos_condition() == Some(64) {
        let Some(Ok(ip)) = req.installment_request() else {
            a.code = ResponseCode::FORMAT_ERROR;
            return a;
        };
        let amount = req.amount().unwrap_or(0);
        let merchant = req.field(42).unwrap_or_default();
        let currency = std::str::from_utf8(&currency(req))
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(156);
        match rules.installments.quote(amount, merchant, &ip, true) {
            Ok(q) => a.installment = Some(q.response(currency)),
            Err(d) => {
                a.code = d.code;
                a.reason = d.reason;
            }
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use iso8583::subfields::{FeeMode, InstallmentRequest};
    use iso8583::{Header, InstId, MessageBuilder};

    fn request(mti: Mti, f3: &str, f25: &str, amount: Option<u64>) -> MessageBuilder {
        let mut b = MessageBuilder::new(
            mti,
            Header::new(
                InstId::new("03010000").unwrap(),
                InstId::new("00010000").unwrap(),
            ),
        );
        b.set(2, "6222020000000123")
            .set(3, f3)
            .set(7, "1121093000")
            .set(11, "000123");
        if let Some(a) = amount {
            b.set_numeric(4, a);
        }
        b.set(25, f25)
            .set(32, "01030000")
            .set(33, "01030000")
            .set(49, "156");
        b
    }

    fn run(b: &MessageBuilder, rules: &Rules) -> (Outcome, Option<Message>) {
        let req = Message::decode(b.build().unwrap()).unwrap();
        let a = answer(&req, rules, &Behaviour::default(), *b"A00001", 0.5);
        (
            a.outcome,
            a.response
                .map(|r| Message::decode(r.build(&req).unwrap()).unwrap()),
        )
    }

    #[test]
    fn balance_inquiry_carries_f54() {
        let (outcome, resp) = run(
            &request(Mti::FINANCIAL_REQUEST, "301000", "00", None),
            &Rules::default().with_balance(12_345),
        );
        assert_eq!(outcome, Outcome::Approved);
        let resp = resp.unwrap();
        assert_eq!(resp.field(54), Some(&b"1002156C000000012345"[..]));
        assert_eq!(resp.field(38), Some(&b"A00001"[..]));
    }

    #[test]
    fn installment_without_ip_is_format_error() {
        let (outcome, resp) = run(
            &request(Mti::FINANCIAL_REQUEST, "000000", "64", Some(600_000)),
            &Rules::default(),
        );
        assert_eq!(outcome, Outcome::Declined(ResponseCode::FORMAT_ERROR));
        assert!(resp.unwrap().field(38).is_none());
    }

    #[test]
    fn installment_declines_and_approval() {
        let ip = InstallmentRequest {
            periods: 6,
            project_code: [b' '; 30],
            fee_mode: FeeMode::FirstPeriod,
            fee_rate: 1_000,
            subsidy_rate: 2_000,
        };
        let mut b = request(Mti::FINANCIAL_REQUEST, "000000", "64", Some(600_000));
        b.set(48, ip.encode());
        assert_eq!(
            run(&b, &Rules::default()).0,
            Outcome::Declined(ResponseCode::FEE_RATE_MISMATCH)
        );
        let ip = InstallmentRequest {
            fee_rate: 0,
            subsidy_rate: 0,
            ..ip
        };
        b.set(48, ip.encode());
        let (outcome, resp) = run(&b, &Rules::default());
        assert_eq!(outcome, Outcome::Approved);
        let f57 = resp.unwrap().installment_response().unwrap().unwrap();
        // Standard 6-period rate 4.320 %: fee 25920, all in the first period.
        assert_eq!(
            (f57.cardholder_fee, f57.first_amount, f57.currency),
            (25_920, 125_920, 156)
        );
    }

    #[test]
    fn behaviour_switches() {
        let quiet = Behaviour {
            answer_reversals: false,
            answer_echoes: false,
            ..Behaviour::default()
        };
        let rev = Message::decode(
            request(Mti::REVERSAL_ADVICE, "000000", "00", Some(1))
                .build()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            answer(&rev, &Rules::default(), &quiet, *b"000000", 0.0).outcome,
            Outcome::Unanswered
        );
        let resp = Message::decode(
            request(Mti::FINANCIAL_RESPONSE, "000000", "00", Some(1))
                .build()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            answer(&resp, &Rules::default(), &quiet, *b"000000", 0.0).outcome,
            Outcome::Ignored
        );
    }
}
