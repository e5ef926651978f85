//! FileStore benchmarks (filled in below).

fn main() {}
