//! ISO 8583 codec for the CUPS-style institution interface (`../shared/SPEC.md` sections 2
//! to 4 and 11). No I/O and no async: every binary of cardswitch uses it to read and write
//! the wire format.
//!
//! - [`dict`]: the field dictionary as data (format, length, sensitivity).
//! - [`header`]: the 46-byte header, responses and rejects.
//! - [`frame`]: the 4-digit length framing as a tokio-util codec.
//! - [`Message`]: a zero-copy view over a received frame with typed accessors, and
//!   [`Message::rewrite`] for cheap forwarding.
//! - [`MessageBuilder`]: building messages field by field.
//! - [`subfields`]: F48/F57 `IP`, F60, F90, F54.
//! - [`render`]: masking, `Debug`/`Display`, JSON for `switch describe` / `switch encode`.

pub mod builder;
pub mod dict;
pub mod error;
pub mod frame;
pub mod header;
pub mod message;
pub mod mti;
pub mod render;
pub mod subfields;

pub use builder::MessageBuilder;
pub use dict::{Dictionary, FieldSpec, CUPS};
pub use error::{DecodeError, EncodeError, ErrorKind, Location, RejectCode};
pub use frame::{Frame, FrameCodec, FramingError};
pub use header::{build_reject, Header, InstId, HEADER_LEN};
pub use message::{Message, Packet, Rewrite};
pub use mti::{Mti, ResponseCode};
pub use render::{mask_pan, MaskedPan};
