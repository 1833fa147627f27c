//! Integration tests: one binary, modules by area.

mod terraform;
