//! [`PieceTokenizer`] for HF byte-level BPE tokenizers ([`HfTokenizer`]).
//!
//! Byte probabilities are defined over the text the tokenizer sees, so tokenizers whose
//! encoding is not a function of the raw bytes alone are refused with a clear error:
//! normalizers, `add_prefix_space`, and non-special added tokens (which are matched in text
//! before pre-tokenization). Special added tokens never come from text (HF's
//! `encode_special_tokens=True` semantics): they carry no bytes, and the end-of-text token is
//! one of them.

use crate::bpe::MergeTable;
use crate::bytes::source::{regex_atoms, regex_letter_context, regex_literals, PieceTokenizer};
use crate::error::{Error, Result};
use crate::hf::bytelevel::GPT2_PATTERN;
use crate::hf::pattern::PatternSpec;
use crate::hf::pretokenize::{self, Piece, PreTokenizer, Scratch, Step};
use crate::hf::HfTokenizer;
use crate::vocab::Vocab;

/// An HF byte-level BPE tokenizer seen by the byte-probability machinery.
#[derive(Debug)]
pub struct HfPieces {
    tok: HfTokenizer,
    steps: Vec<Step>,
    vocab: Vocab,
    specials: Vec<u32>,
    eot: Option<u32>,
    literals: Vec<char>,
    atoms: Option<Vec<String>>,
    letters: Option<(Vec<char>, usize)>,
}

fn merge_ctx(
    a: Option<(Vec<char>, usize)>,
    b: Option<(Vec<char>, usize)>,
) -> Option<(Vec<char>, usize)> {
    let (mut x, w1) = a?;
    let (y, w2) = b?;
    for c in y {
        if !x.contains(&c) {
            x.push(c);
        }
    }
    Some((x, w1.max(w2)))
}

impl HfPieces {
    /// Wrap an HF tokenizer. `eot` names the end-of-text special token (default
    /// `<|endoftext|>` when the tokenizer has it).
    pub fn new(tok: HfTokenizer, eot: Option<&str>) -> Result<Self> {
        if tok.normalizer().is_some() {
            return Err(Error::InvalidArgument(
                "byte-level probabilities: tokenizers with a normalizer are not supported (the \
                 probabilities would be over normalized text)"
                    .into(),
            ));
        }
        let mut flat = Vec::new();
        if let Some(p) = tok.pre_tokenizer() {
            p.flatten("pre_tokenizer", &mut flat);
        }
        let mut literals: Vec<char> = Vec::new();
        let mut atoms: Option<Vec<String>> = Some(Vec::new());
        let mut letters: Option<(Vec<char>, usize)> = Some((Vec::new(), 4));
        let add = |pat: &str,
                   lits: &mut Vec<char>,
                   atoms: &mut Option<Vec<String>>,
                   letters: &mut Option<(Vec<char>, usize)>| {
            lits.extend(regex_literals(pat));
            *atoms = match (atoms.take(), regex_atoms(pat)) {
                (Some(mut a), Some(b)) => {
                    for x in b {
                        if !a.contains(&x) {
                            a.push(x);
                        }
                    }
                    Some(a)
                }
                _ => None,
            };
            *letters = merge_ctx(letters.take(), regex_letter_context(pat));
        };
        for (path, p) in &flat {
            match p {
                PreTokenizer::ByteLevel {
                    add_prefix_space,
                    use_regex,
                    ..
                } => {
                    if *add_prefix_space {
                        return Err(Error::InvalidArgument(format!(
                            "byte-level probabilities: {path}.add_prefix_space=true is not supported \
                             (decoding would not give back the text)"
                        )));
                    }
                    if *use_regex {
                        add(GPT2_PATTERN, &mut literals, &mut atoms, &mut letters);
                    }
                }
                PreTokenizer::Split { pattern, .. } => match pattern {
                    PatternSpec::Regex(r) => add(r, &mut literals, &mut atoms, &mut letters),
                    PatternSpec::String(s) => {
                        literals.extend(s.chars());
                        if s.chars().any(|c| c.is_alphabetic()) {
                            letters = None;
                        }
                    }
                },
                PreTokenizer::Digits { .. } => {
                    add(r"\p{N}", &mut literals, &mut atoms, &mut letters);
                    add(r"\d", &mut literals, &mut atoms, &mut letters);
                }
                PreTokenizer::Whitespace => {
                    add(r"\w+|[^\w\s]+", &mut literals, &mut atoms, &mut letters)
                }
                PreTokenizer::WhitespaceSplit => {
                    add(r"\s+", &mut literals, &mut atoms, &mut letters)
                }
                PreTokenizer::Punctuation { .. } => {
                    add(r"\p{P}", &mut literals, &mut atoms, &mut letters);
                    literals.extend(
                        (0u8..128)
                            .map(|b| b as char)
                            .filter(|c| c.is_ascii_punctuation()),
                    );
                }
                PreTokenizer::Sequence(_) => {}
            }
        }
        let steps = pretokenize::compile(&flat)?;
        let mut specials = Vec::new();
        for (id, t) in tok.added().tokens() {
            if !t.special {
                return Err(Error::InvalidArgument(format!(
                    "byte-level probabilities: the non-special added token {:?} is matched in text \
                     before pre-tokenization, which is not supported",
                    t.content
                )));
            }
            specials.push(*id);
        }
        specials.sort_unstable();
        let model = tok.model();
        let vocab = Vocab::from_pairs(
            model
                .byte_vocab()
                .iter()
                .filter(|(id, _)| specials.binary_search(id).is_err())
                .map(|(id, b)| (b.to_vec(), id)),
        )?;
        let eot_name = eot.unwrap_or("<|endoftext|>");
        let eot_id = tok
            .added()
            .id_of(eot_name)
            .filter(|i| specials.binary_search(i).is_ok());
        if eot.is_some() && eot_id.is_none() {
            return Err(Error::InvalidArgument(format!(
                "{eot_name:?} is not a special token of this tokenizer"
            )));
        }
        literals.extend([' ', '\r', '\n', '\t']);
        literals.sort_unstable();
        literals.dedup();
        Ok(HfPieces {
            tok,
            steps,
            vocab,
            specials,
            eot: eot_id,
            literals,
            atoms,
            letters,
        })
    }
}

impl PieceTokenizer for HfPieces {
    fn vocab(&self) -> &Vocab {
        &self.vocab
    }
    fn merges(&self) -> &MergeTable {
        self.tok.model().merge_table()
    }
    fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        let start = out.len();
        self.tok.model().encode_piece(piece, out, None)?;
        if out[start..]
            .iter()
            .any(|t| self.specials.binary_search(t).is_ok())
        {
            // a special token's text in a piece is ordinary text here
            out.truncate(start);
            self.merges().encode_piece(piece, out)?;
        }
        Ok(())
    }
    fn split(&self, text: &str, out: &mut Vec<(usize, usize)>) -> Result<()> {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut sc = Scratch::default();
        pretokenize::run(text, &self.steps, &mut pieces, &mut sc)?;
        out.extend(pieces.iter().map(|p| (p.start, p.end)));
        Ok(())
    }
    fn pattern_literals(&self) -> Vec<char> {
        self.literals.clone()
    }
    fn letter_context(&self) -> Option<(Vec<char>, usize)> {
        self.letters.clone()
    }
    fn class_atoms(&self) -> Option<Vec<String>> {
        self.atoms.clone()
    }
    fn special_ids(&self) -> Vec<u32> {
        let mut ids = self.specials.clone();
        ids.extend((0..self.vocab.n_slots() as u32).filter(|&i| self.vocab.bytes(i).is_none()));
        ids.sort_unstable();
        ids.dedup();
        ids
    }
    fn eot(&self) -> Option<u32> {
        self.eot
    }
    fn n_ids(&self) -> usize {
        let m = self.tok.vocab_size();
        m.max(self.vocab.n_slots()).max(
            self.specials
                .iter()
                .map(|&i| i as usize + 1)
                .max()
                .unwrap_or(0),
        )
    }
}
