//! (being written)

use crate::Test;

pub const TESTS: &[Test] = &[];
