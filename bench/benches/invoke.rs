//! Placeholder (issue #15), replaced in the next commits.

fn main() {}
