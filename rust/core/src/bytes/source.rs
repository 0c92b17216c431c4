//! What the marginaliser needs from a tokenizer, as a trait, and its implementations.

use crate::bpe::MergeTable;
use crate::encoding::CoreEncoding;
use crate::error::{Error, Result};
use crate::pretok::Pretokenizer;
use crate::vocab::Vocab;

/// A byte-level BPE tokenizer as the byte-probability machinery sees it: pre-tokenization
/// (text → pieces), the canonical encoding of one piece, the pure merge engine used inside
/// pieces, and the ids that carry no bytes.
///
/// Contract: the canonical encoding of a text is the concatenation of
/// [`encode_piece`](Self::encode_piece) over the pieces of [`split`](Self::split);
/// `encode_piece` is either pure BPE under [`merges`](Self::merges) or, when the piece is
/// itself a token, that token (tiktoken's "whole piece first" / HF `ignore_merges`).
/// Pre-tokenization must be a deterministic function of the text in which a piece's extent
/// depends only on the characters from its start onward (no look-behind), and whose
/// decisions depend on characters only through their Unicode general category, their
/// White_Space property and whether they are one of [`pattern_literals`](Self::pattern_literals).
pub trait PieceTokenizer: Send + Sync + std::fmt::Debug {
    /// Mergeable tokens (every id with bytes).
    fn vocab(&self) -> &Vocab;
    /// The pure merge engine used inside a piece.
    fn merges(&self) -> &MergeTable;
    /// Canonical encoding of one complete piece.
    fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()>;
    /// Pieces of `text` as byte ranges, in order. Text not covered by any piece is
    /// dropped by the tokenizer (and therefore has probability zero).
    fn split(&self, text: &str, out: &mut Vec<(usize, usize)>) -> Result<()>;
    /// Characters the pre-tokenizer treats individually (literals of its patterns).
    fn pattern_literals(&self) -> Vec<char>;
    /// `Some((anchors, w))` if the pre-tokenizer only ever matches its literal *letters*
    /// within `w` characters after one of the `anchors` (as in contraction rules such as
    /// `'(?i:[sdmt]|ll|ve|re)`); elsewhere letters then act through their class only. `None`
    /// (the safe default) keeps every literal letter distinct.
    fn letter_context(&self) -> Option<(Vec<char>, usize)> {
        None
    }
    /// The character classes the pre-tokenizer tests, as regex atoms (`\\p{L}`, `\\s`,
    /// `.`, ...); characters that match the same atoms and are not literals are then
    /// interchangeable. `None` (the safe default) distinguishes every Unicode general
    /// category and White_Space.
    fn class_atoms(&self) -> Option<Vec<String>> {
        None
    }
    /// Ids that exist but have no bytes (special / control tokens).
    fn special_ids(&self) -> Vec<u32>;
    /// The end-of-text token, if the tokenizer has one.
    fn eot(&self) -> Option<u32>;
    /// One past the largest id (mergeable or special).
    fn n_ids(&self) -> usize {
        let m = self.vocab().n_slots();
        self.special_ids()
            .iter()
            .map(|&i| i as usize + 1)
            .max()
            .unwrap_or(0)
            .max(m)
    }

    /// Canonical encoding of a whole text (no special-token matching).
    fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        let mut pieces = Vec::new();
        self.split(text, &mut pieces)?;
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut pos = 0;
        for (a, b) in pieces {
            if a != pos {
                return Err(Error::InvalidArgument(format!(
                    "the pre-tokenizer drops {:?}: this text cannot be encoded",
                    &text[pos..a]
                )));
            }
            self.encode_piece(&text.as_bytes()[a..b], &mut out)?;
            pos = b;
        }
        if pos != text.len() {
            return Err(Error::InvalidArgument(format!(
                "the pre-tokenizer drops {:?}: this text cannot be encoded",
                &text[pos..]
            )));
        }
        Ok(out)
    }
}

/// Literal characters of a regex pattern (over-approximated: every character that is not
/// syntax), plus their case variants when the pattern has a case-insensitive flag.
pub fn regex_literals(pattern: &str) -> Vec<char> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut lits: Vec<char> = Vec::new();
    let mut i = 0;
    let mut case_insensitive = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&e) = chars.get(i + 1) else { break };
                i += 2;
                match e {
                    'p' | 'P' => {
                        if chars.get(i) == Some(&'{') {
                            while i < chars.len() && chars[i] != '}' {
                                i += 1;
                            }
                            i += 1;
                        } else {
                            i += 1;
                        }
                    }
                    'r' => lits.push('\r'),
                    'n' => lits.push('\n'),
                    't' => lits.push('\t'),
                    'f' => lits.push('\x0c'),
                    'v' => lits.push('\x0b'),
                    '0' => lits.push('\0'),
                    'x' => {
                        let hex: String = if chars.get(i) == Some(&'{') {
                            i += 1;
                            let start = i;
                            while i < chars.len() && chars[i] != '}' {
                                i += 1;
                            }
                            let h = chars[start..i].iter().collect();
                            i += 1;
                            h
                        } else {
                            take_chars(&chars, &mut i, 2)
                        };
                        lits.extend(hex_char(&hex));
                    }
                    'u' => {
                        let hex = take_chars(&chars, &mut i, 4);
                        lits.extend(hex_char(&hex));
                    }
                    's' | 'S' | 'd' | 'D' | 'w' | 'W' | 'b' | 'B' | 'A' | 'z' | 'Z' | 'h' | 'H'
                    | 'G' | 'K' => {}
                    other => lits.push(other),
                }
            }
            '(' => {
                i += 1;
                if chars.get(i) == Some(&'?') {
                    i += 1;
                    // flags / look-around markers up to ':' or ')' or the body start
                    while i < chars.len() {
                        let f = chars[i];
                        if f == 'i' {
                            case_insensitive = true;
                        }
                        if f == ':' || f == ')' {
                            i += 1;
                            break;
                        }
                        if f == '=' || f == '!' {
                            i += 1;
                            break;
                        }
                        if f == '<' {
                            i += 1;
                            continue;
                        }
                        i += 1;
                    }
                }
            }
            '{' => {
                // quantifier {m,n}
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == ',') {
                    j += 1;
                }
                if j < chars.len() && chars[j] == '}' && j > i + 1 {
                    i = j + 1;
                } else {
                    lits.push('{');
                    i += 1;
                }
            }
            '[' | ']' | ')' | '|' | '?' | '*' | '+' | '.' | '^' | '$' => i += 1,
            '-' if i > 0
                && chars[i - 1] != '['
                && chars.get(i + 1).is_some_and(|&n| n != ']' && n != '\\') =>
            {
                // a range a-z inside a class: every character of it is a literal
                if let (Some(&lo), Some(&hi)) = (lits.last(), chars.get(i + 1)) {
                    if (hi as u32) >= (lo as u32) && (hi as u32) - (lo as u32) <= 0x10000 {
                        for u in lo as u32..=hi as u32 {
                            if let Some(ch) = char::from_u32(u) {
                                lits.push(ch);
                            }
                        }
                    }
                }
                i += 2;
            }
            _ => {
                lits.push(c);
                i += 1;
            }
        }
    }
    if case_insensitive {
        let base = lits.clone();
        for c in base {
            for v in c.to_lowercase().chain(c.to_uppercase()) {
                lits.push(v);
            }
            match c.to_ascii_lowercase() {
                's' => lits.push('\u{17f}'),
                'k' => lits.push('\u{212a}'),
                _ => {}
            }
        }
    }
    lits.extend([' ', '\r', '\n', '\t']);
    lits.sort_unstable();
    lits.dedup();
    lits
}

/// The class atoms of a regex pattern (see [`PieceTokenizer::class_atoms`]): every
/// `\\p{..}` / `\\P{..}`, `\\s`, `\\d`, `\\w`, `\\h` and `.`; `None` if the pattern uses a
/// construct whose character test is not one of those (`\\b`, scripts via `\\p{Greek}`-like
/// names are fine, back-references are not supported by the contract anyway).
pub fn regex_atoms(pattern: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut atoms: Vec<String> = Vec::new();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let e = *chars.get(i + 1)?;
                i += 2;
                let atom = match e {
                    'p' | 'P' => {
                        if chars.get(i) == Some(&'{') {
                            let mut name = String::new();
                            i += 1;
                            while i < chars.len() && chars[i] != '}' {
                                name.push(chars[i]);
                                i += 1;
                            }
                            i += 1;
                            Some(format!("\\p{{{name}}}"))
                        } else {
                            let n = *chars.get(i)?;
                            i += 1;
                            Some(format!("\\p{n}"))
                        }
                    }
                    's' | 'S' => Some("\\s".to_string()),
                    'd' | 'D' => Some("\\d".to_string()),
                    'w' | 'W' => Some("\\w".to_string()),
                    'h' | 'H' => Some("\\h".to_string()),
                    'b' | 'B' => return None,
                    _ => None,
                };
                if let Some(a) = atom {
                    if !atoms.contains(&a) {
                        atoms.push(a);
                    }
                }
                continue;
            }
            '[' => in_class = true,
            ']' => in_class = false,
            '.' if !in_class && !atoms.iter().any(|a| a == ".") => atoms.push(".".to_string()),
            _ => {}
        }
        i += 1;
    }
    Some(atoms)
}

/// For a regex pattern: the non-letter literals that every literal letter follows (see
/// [`PieceTokenizer::letter_context`]), found by walking back from each literal letter in
/// the pattern source over letters and group syntax. `None` if some literal letter has no
/// such anchor.
pub fn regex_letter_context(pattern: &str) -> Option<(Vec<char>, usize)> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut anchors: Vec<char> = Vec::new();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            // escapes: \p{..} and friends are classes, never literal letters
            i += 2;
            if matches!(chars.get(i - 1), Some('p') | Some('P')) && chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            }
            continue;
        }
        if c == '[' {
            in_class = true;
        } else if c == ']' {
            in_class = false;
        }
        let is_flag = c == 'i' && i >= 1 && (chars[i - 1] == '?' || chars[i - 1] == '-');
        if c.is_alphabetic() && !is_flag {
            // walk back over letters and group / alternation syntax
            let mut k = i;
            let mut anchor = None;
            while k > 0 {
                k -= 1;
                let d = chars[k];
                if d.is_alphabetic() || "()|?:[]".contains(d) {
                    continue;
                }
                if k > 0 && chars[k - 1] == '\\' {
                    break;
                }
                if !"*+{}.^$\\-,".contains(d) && !d.is_ascii_digit() && !d.is_whitespace() {
                    anchor = Some(d);
                }
                break;
            }
            match anchor {
                Some(a) => {
                    if !anchors.contains(&a) {
                        anchors.push(a);
                    }
                }
                None => return None,
            }
        }
        let _ = in_class;
        i += 1;
    }
    Some((anchors, 4))
}

impl PieceTokenizer for CoreEncoding {
    fn vocab(&self) -> &Vocab {
        CoreEncoding::vocab(self)
    }
    fn merges(&self) -> &MergeTable {
        CoreEncoding::merges(self)
    }
    fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        CoreEncoding::encode_piece(self, piece, out)
    }
    fn split(&self, text: &str, out: &mut Vec<(usize, usize)>) -> Result<()> {
        self.pretokenizer().for_each_piece(text, |a, b| {
            out.push((a, b));
            Ok(())
        })
    }
    fn pattern_literals(&self) -> Vec<char> {
        regex_literals(self.pretokenizer().pattern())
    }
    fn letter_context(&self) -> Option<(Vec<char>, usize)> {
        regex_letter_context(self.pretokenizer().pattern())
    }
    fn class_atoms(&self) -> Option<Vec<String>> {
        regex_atoms(self.pretokenizer().pattern())
    }
    fn special_ids(&self) -> Vec<u32> {
        let v = CoreEncoding::vocab(self);
        let mut ids: Vec<u32> = self.specials().tokens().iter().map(|t| t.1).collect();
        // holes below the largest id carry no bytes either
        ids.extend((0..v.n_slots() as u32).filter(|&i| v.bytes(i).is_none()));
        ids.sort_unstable();
        ids.dedup();
        ids
    }
    fn eot(&self) -> Option<u32> {
        self.specials().id_of("<|endoftext|>")
    }
}

/// A byte-level BPE tokenizer assembled from parts: vocabulary, an ordered HF-style merge
/// list, a split regex (fancy-regex syntax, `find_iter` semantics) and special tokens.
/// Covers HF byte-level BPE tokenizers whose pre-tokenizer is one split regex (GPT-2,
/// Llama-3, Qwen-2 style) and SuperBPE tokenizers (a digit-grouping regex only).
#[derive(Debug)]
pub struct RegexBpe {
    vocab: Vocab,
    merges: MergeTable,
    pretok: Pretokenizer,
    ignore_merges: bool,
    specials: Vec<(String, u32)>,
    eot: Option<u32>,
}

impl RegexBpe {
    /// Build from token bytes with ids, merges `(left id, right id)` in rank order (the
    /// result is the token of the concatenated bytes), a split pattern and special tokens.
    pub fn new(
        tokens: Vec<(Vec<u8>, u32)>,
        merges: &[(u32, u32)],
        pattern: &str,
        specials: Vec<(String, u32)>,
        eot: Option<u32>,
        ignore_merges: bool,
    ) -> Result<Self> {
        let vocab = Vocab::from_pairs(tokens)?;
        let mut triples = Vec::with_capacity(merges.len());
        for (rank, &(l, r)) in merges.iter().enumerate() {
            let (Some(a), Some(b)) = (vocab.bytes(l), vocab.bytes(r)) else {
                return Err(Error::InvalidVocab(format!(
                    "merge {rank} refers to unknown token ids ({l}, {r})"
                )));
            };
            let mut cat = a.to_vec();
            cat.extend_from_slice(b);
            let Some(res) = vocab.get(&cat) else {
                return Err(Error::InvalidVocab(format!(
                    "merge {rank} produces {} which is not in the vocabulary",
                    crate::util::bytes_repr(&cat)
                )));
            };
            triples.push((l, r, res));
        }
        for (s, id) in &specials {
            if vocab.bytes(*id).is_some() {
                return Err(Error::InvalidVocab(format!(
                    "special token {s:?} reuses the id {id} of a mergeable token"
                )));
            }
        }
        if let Some(e) = eot {
            if !specials.iter().any(|(_, id)| *id == e) {
                return Err(Error::InvalidArgument(format!(
                    "end-of-text id {e} is not a special token"
                )));
            }
        }
        let merges = MergeTable::from_merges(&vocab, &triples);
        Ok(RegexBpe {
            vocab,
            merges,
            pretok: Pretokenizer::new_regex(pattern)?,
            ignore_merges,
            specials,
            eot,
        })
    }
}

impl PieceTokenizer for RegexBpe {
    fn vocab(&self) -> &Vocab {
        &self.vocab
    }
    fn merges(&self) -> &MergeTable {
        &self.merges
    }
    fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        if self.ignore_merges {
            if let Some(id) = self.vocab.get(piece) {
                out.push(id);
                return Ok(());
            }
        }
        self.merges.encode_piece(piece, out)
    }
    fn split(&self, text: &str, out: &mut Vec<(usize, usize)>) -> Result<()> {
        self.pretok.for_each_piece(text, |a, b| {
            out.push((a, b));
            Ok(())
        })
    }
    fn pattern_literals(&self) -> Vec<char> {
        regex_literals(self.pretok.pattern())
    }
    fn letter_context(&self) -> Option<(Vec<char>, usize)> {
        regex_letter_context(self.pretok.pattern())
    }
    fn class_atoms(&self) -> Option<Vec<String>> {
        regex_atoms(self.pretok.pattern())
    }
    fn special_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.specials.iter().map(|t| t.1).collect();
        ids.extend((0..self.vocab.n_slots() as u32).filter(|&i| self.vocab.bytes(i).is_none()));
        ids.sort_unstable();
        ids.dedup();
        ids
    }
    fn eot(&self) -> Option<u32> {
        self.eot
    }
}

/// Up to `n` characters from `chars[*i..]` (advancing `*i`).
fn take_chars(chars: &[char], i: &mut usize, n: usize) -> String {
    let end = (*i + n).min(chars.len());
    let s = chars[*i..end].iter().collect();
    *i = end;
    s
}

/// The character with this hexadecimal code point, if valid.
fn hex_char(hex: &str) -> Option<char> {
    u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_of_cl100k() {
        let l = regex_literals(crate::pretok::patterns::CL100K);
        for c in [
            '\'', 's', 'S', 'd', 'm', 't', 'l', 'v', 'e', 'r', 'R', '\r', '\n', ' ', '\u{17f}',
        ] {
            assert!(l.contains(&c), "{c:?}");
        }
        for c in ['p', 'N', '1', '3', '$', 'a'] {
            assert!(!l.contains(&c), "{c:?}");
        }
    }

    #[test]
    fn hex_escapes() {
        let l = regex_literals(r"\x41|\x{1F600}|\u00e9|\x{zz}|\x4");
        for c in ['A', '\u{1F600}', '\u{e9}', '\u{4}'] {
            assert!(l.contains(&c), "{c:?}");
        }
        assert!(!l.contains(&'z'), "an invalid \\x{{..}} adds nothing");
    }

    #[test]
    fn atoms_and_ranges() {
        let a = regex_atoms(crate::pretok::patterns::CL100K).unwrap();
        assert_eq!(
            a,
            vec![
                "\\p{L}".to_string(),
                "\\p{N}".to_string(),
                "\\s".to_string()
            ]
        );
        assert!(regex_atoms(r"\bx").is_none());
        let l = regex_literals(r"[a-f]+|x");
        for c in ['a', 'b', 'c', 'd', 'e', 'f', 'x'] {
            assert!(l.contains(&c), "{c}");
        }
    }

    #[test]
    fn letter_context_of_known_patterns() {
        use crate::pretok::patterns::{CL100K, O200K, R50K};
        for p in [
            CL100K,
            O200K,
            R50K,
            r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|\s+",
        ] {
            let (a, w) = regex_letter_context(p).expect(p);
            assert_eq!(a, vec!['\'']);
            assert!(w >= 2);
        }
        assert_eq!(
            regex_letter_context(r"\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N}))|\P{N}+"),
            Some((vec![], 4))
        );
        assert!(regex_letter_context(r"hello|\p{L}+").is_none());
        assert!(regex_letter_context(r"\bab|\s").is_none());
    }
}
