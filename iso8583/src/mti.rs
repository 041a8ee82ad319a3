//! Message type indicator and response code values (SPEC.md sections 5 and 10).

use std::fmt;

/// A message type indicator, 4 ASCII digits (`0200`, `0430` ...).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mti(pub [u8; 4]);

impl Mti {
    pub const AUTH_REQUEST: Mti = Mti(*b"0100");
    pub const AUTH_RESPONSE: Mti = Mti(*b"0110");
    pub const FINANCIAL_REQUEST: Mti = Mti(*b"0200");
    pub const FINANCIAL_RESPONSE: Mti = Mti(*b"0210");
    pub const FINANCIAL_ADVICE: Mti = Mti(*b"0220");
    pub const FINANCIAL_ADVICE_RESPONSE: Mti = Mti(*b"0230");
    pub const REVERSAL_ADVICE: Mti = Mti(*b"0420");
    pub const REVERSAL_ADVICE_RESPONSE: Mti = Mti(*b"0430");
    pub const NETWORK_REQUEST: Mti = Mti(*b"0820");
    pub const NETWORK_RESPONSE: Mti = Mti(*b"0830");

    /// Parse 4 ASCII digits.
    #[must_use]
    pub fn parse(raw: &[u8]) -> Option<Mti> {
        let raw: [u8; 4] = raw.try_into().ok()?;
        raw.iter().all(u8::is_ascii_digit).then_some(Mti(raw))
    }

    /// The message class digit (`1` authorisation, `2` financial, `4` reversal, `8` network).
    #[must_use]
    pub fn class(self) -> u8 {
        self.0[1] - b'0'
    }

    /// The function digit (0 request, 1 request response, 2 advice, 3 advice response).
    #[must_use]
    pub fn function(self) -> u8 {
        self.0[2] - b'0'
    }

    /// Whether this MTI is one the CUPS interface uses (version 0, class 1/2/4/8,
    /// function 0 to 3, origin 0). Anything else is an unknown transaction type (`09990`).
    #[must_use]
    pub fn is_known(self) -> bool {
        self.0[0] == b'0'
            && matches!(self.0[1], b'1' | b'2' | b'4' | b'8')
            && matches!(self.0[2], b'0'..=b'3')
            && self.0[3] == b'0'
    }

    /// Requests and advices expect an answer; responses do not.
    #[must_use]
    pub fn is_request(self) -> bool {
        self.function().is_multiple_of(2)
    }

    #[must_use]
    pub fn is_response(self) -> bool {
        !self.is_request()
    }

    /// The MTI of the answer to this request (`0200` -> `0210`).
    #[must_use]
    pub fn response(self) -> Mti {
        let mut raw = self.0;
        if self.is_request() {
            raw[2] += 1;
        }
        Mti(raw)
    }

    /// The MTI of the request this response answers (`0430` -> `0420`).
    #[must_use]
    pub fn request(self) -> Mti {
        let mut raw = self.0;
        if self.is_response() {
            raw[2] -= 1;
        }
        Mti(raw)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("????")
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mti({})", self.as_str())
    }
}

/// A response code (F39), two characters. Declines are values, not errors.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseCode(pub [u8; 2]);

macro_rules! codes {
    ($( $name:ident = $code:literal, $meaning:literal; )*) => {
        impl ResponseCode {
            $( #[doc = $meaning] pub const $name: ResponseCode = ResponseCode(*$code); )*

            /// Every code of SPEC.md section 10.
            pub const ALL: &'static [ResponseCode] = &[$(ResponseCode::$name),*];

            /// The meaning of the code per SPEC.md section 10, or `None` for an unlisted code.
            #[must_use]
            pub fn meaning(self) -> Option<&'static str> {
                match &self.0 { $( $code => Some($meaning), )* _ => None }
            }
        }
    };
}

codes! {
    APPROVED = b"00", "Approved";
    REFER_TO_ISSUER = b"01", "Refer to issuer";
    INVALID_MERCHANT = b"03", "Invalid merchant / merchant not in issuer whitelist";
    PICK_UP = b"04", "Pick up card";
    DO_NOT_HONOUR = b"05", "Do not honour / cardholder verification failed";
    INVALID_RELATED = b"12", "Invalid related transaction (original not approved)";
    INVALID_AMOUNT = b"13", "Invalid amount";
    INVALID_CARD = b"14", "Invalid card number";
    NO_SUCH_ISSUER = b"15", "No such issuer (BIN not routable)";
    NOT_ACTIVATED = b"21", "Card not activated";
    ILLEGAL_RELATED = b"22", "Illegal related transaction (already voided/reversed, window passed)";
    FEE_RATE_MISMATCH = b"23", "Installment fee rate not the one agreed";
    ORIGINAL_NOT_FOUND = b"25", "Original transaction not found";
    FORMAT_ERROR = b"30", "Format error";
    SUSPECTED_FRAUD = b"34", "Suspected fraud";
    PIN_TRIES_EXCEEDED = b"38", "PIN tries exceeded";
    NOT_SUPPORTED = b"40", "Function not supported";
    LOST_CARD = b"41", "Lost card";
    STOLEN_CARD = b"43", "Stolen card";
    INSUFFICIENT_FUNDS = b"51", "Insufficient funds";
    EXPIRED_CARD = b"54", "Expired card";
    WRONG_PIN = b"55", "Wrong PIN";
    NOT_PERMITTED_CARDHOLDER = b"57", "Not permitted to cardholder";
    NOT_PERMITTED_TERMINAL = b"58", "Not permitted at terminal";
    CVN_FAILED = b"59", "CVN check failed";
    AMOUNT_LIMIT = b"61", "Amount limit exceeded";
    RESTRICTED_CARD = b"62", "Restricted card";
    AMOUNT_MISMATCH = b"64", "Amount differs from original";
    COUNT_LIMIT = b"65", "Count limit exceeded";
    PIN_TRIES_EXCEEDED_75 = b"75", "PIN tries exceeded";
    CUTOVER_IN_PROGRESS = b"90", "Cut-over in progress";
    ISSUER_INOPERATIVE = b"91", "Issuer inoperative / signed off / link down";
    DUPLICATE = b"94", "Duplicate transmission";
    SYSTEM_MALFUNCTION = b"96", "Switch malfunction";
    TERMINAL_MISMATCH = b"97", "Terminal not registered / differs from original";
    ISSUER_TIMEOUT = b"98", "Switch received no issuer response in time";
    PIN_FORMAT_ERROR = b"99", "PIN format error";
    MAC_FAILED = b"A0", "MAC verification failed";
    NOT_SIGNED_ON = b"C1", "Acquirer not signed on";
}

impl ResponseCode {
    /// Parse the two characters of F39.
    #[must_use]
    pub fn parse(raw: &[u8]) -> Option<ResponseCode> {
        let raw: [u8; 2] = raw.try_into().ok()?;
        raw.iter()
            .all(u8::is_ascii_alphanumeric)
            .then_some(ResponseCode(raw))
    }

    #[must_use]
    pub fn is_approved(self) -> bool {
        self == ResponseCode::APPROVED
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseCode({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mti_classes() {
        let m = Mti::parse(b"0200").unwrap();
        assert!(m.is_known() && m.is_request());
        assert_eq!(m.response(), Mti::FINANCIAL_RESPONSE);
        assert_eq!(
            Mti::REVERSAL_ADVICE_RESPONSE.request(),
            Mti::REVERSAL_ADVICE
        );
        assert!(Mti::FINANCIAL_ADVICE.is_request());
        assert!(!Mti(*b"0500").is_known());
        assert!(!Mti(*b"0201").is_known());
        assert!(!Mti(*b"0240").is_known());
        assert!(Mti::parse(b"02a0").is_none());
    }

    #[test]
    fn response_codes_have_meanings() {
        assert_eq!(ResponseCode::ALL.len(), 39);
        assert_eq!(
            ResponseCode::parse(b"C1"),
            Some(ResponseCode::NOT_SIGNED_ON)
        );
        assert!(ResponseCode::parse(b"0 ").is_none());
        assert!(ResponseCode::parse(b"XZ").unwrap().meaning().is_none());
        assert_eq!(
            ResponseCode::ISSUER_TIMEOUT.meaning(),
            Some("Switch received no issuer response in time")
        );
    }
}
