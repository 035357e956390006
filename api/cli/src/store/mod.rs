//! SQL of the command-line tools' own: the benchmark's scratch databases and commit loop.

pub mod bench;
