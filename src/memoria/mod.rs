//! `difusor memoria`: the memoria técnica (R6.1–R6.6) from the access logs and the journal.

pub(crate) mod model;
mod render;
