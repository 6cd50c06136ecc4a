//! Keys and signatures as text: lowercase hex, as `gossip.key` and `cluster revoke` carry them.

/// `bytes` as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes `text` spells in hex (either case), or `None` when it is not an even number of
/// hex digits.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let t = text.as_bytes();
    // from_str_radix alone would take a sign ("+1").
    if !t.len().is_multiple_of(2) || !t.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    t.chunks(2)
        .map(|p| std::str::from_utf8(p).ok().and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(encode(&[0, 0xab, 0x7f]), "00ab7f");
        assert_eq!(decode("00AB7f"), Some(vec![0, 0xab, 0x7f]));
        for bad in ["0", "zz", "+1", "é1"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
