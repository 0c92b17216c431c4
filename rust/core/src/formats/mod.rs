//! File formats: tiktoken `.tiktoken` files (HF `tokenizer.json` lives in `hf`).

pub mod tiktoken;
