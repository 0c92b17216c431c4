//! The byte-level alphabet of GPT-2 / HF `ByteLevel`: every byte is shown as one printable
//! character so that a vocabulary of byte strings can be stored as JSON strings.
//!
//! Printable Latin-1 bytes (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves; the 68
//! other bytes are mapped, in increasing order, to U+0100, U+0101, ... (so the space 0x20
//! becomes `Ġ` U+0120 and `\n` becomes `Ċ` U+010A).

use std::sync::OnceLock;

/// The split regex that HF's `ByteLevel(use_regex=true)` applies (GPT-2's, without
/// possessive quantifiers), in Oniguruma syntax.
pub const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

struct Tables {
    byte_to_char: [char; 256],
    /// Indexed by `char as u32` for chars below 0x144; `None` for chars outside the alphabet.
    char_to_byte: [Option<u8>; 0x144],
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let printable =
            |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        let mut byte_to_char = ['\0'; 256];
        let mut char_to_byte = [None; 0x144];
        let mut n = 0u32;
        for b in 0..=255u8 {
            let c = if printable(b) {
                b as u32
            } else {
                n += 1;
                255 + n
            };
            // all values are below 0x144 and not surrogates
            let ch = char::from_u32(c).unwrap_or('\u{FFFD}');
            byte_to_char[b as usize] = ch;
            char_to_byte[c as usize] = Some(b);
        }
        Tables {
            byte_to_char,
            char_to_byte,
        }
    })
}

/// The character that stands for byte `b`.
#[inline]
pub fn byte_to_char(b: u8) -> char {
    tables().byte_to_char[b as usize]
}

/// The byte a character of the alphabet stands for.
#[inline]
pub fn char_to_byte(c: char) -> Option<u8> {
    let i = c as usize;
    if i < 0x144 {
        tables().char_to_byte[i]
    } else {
        None
    }
}

/// Byte-level string of `bytes` (`b" hi"` → `"Ġhi"`).
pub fn encode_str(bytes: &[u8]) -> String {
    let t = tables();
    bytes.iter().map(|&b| t.byte_to_char[b as usize]).collect()
}

/// Bytes of a byte-level string, or `None` if a character is outside the alphabet.
pub fn decode_str(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        out.push(char_to_byte(c)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_alphabet() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0xAD), 'Ń');
        assert_eq!(byte_to_char(0xFF), 'ÿ');
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(decode_str("Ġhi"), Some(b" hi".to_vec()));
        assert_eq!(decode_str("▁"), None);
        assert_eq!(encode_str(b"\xe2\x96\x81 "), "âĸģĠ");
    }
}
