//! Session ids the gateway issues: 256 bits from the OS-seeded CSPRNG,
//! hex-encoded (visible ASCII, as the transport requires), and never logged
//! in full.

use rand::Rng;

/// A fresh session id: 64 hex characters.
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let mut out = String::with_capacity(64);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The first 8 characters, enough to correlate log lines without handing
/// the log reader a usable id.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_long_visible_ascii_and_distinct() {
        let a = new_session_id();
        let b = new_session_id();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| (0x21..=0x7e).contains(&c)));
        assert_ne!(a, b);
        assert_eq!(short(&a).len(), 8);
        assert_eq!(short("abc"), "abc");
    }
}
