//! Soak run: placeholder, being written.
fn main() {}
