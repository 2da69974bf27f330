//! The keyed hash of a login, so distinct miners can be counted without storing the login.

/// Keyed hash of a login, so distinct miners can be counted without storing the login:
/// HMAC-SHA256 with `key`, truncated to 64 bits, as 16 lower-case hex characters.
pub fn login_hash(key: &[u8; 32], login: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, login.as_bytes());
    let mut out = String::with_capacity(16);
    for b in tag.as_ref().iter().take(8) {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b & 0x0f));
    }
    out
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}
