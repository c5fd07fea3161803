//! Asking a model for paraphrases of a probe's question (`cliffprobe paraphrase`): the prompt,
//! the reply parsing and the accept/retry rounds ([`ask`]). What is frozen into the probe
//! file, and the checks a text must pass, belong to the probe file
//! ([`crate::probe::paraphrases`]).

pub mod ask;
