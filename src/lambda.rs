//! AWS Lambda entry point (feature `lambda`): placeholder, owned by the serverless work.

pub(crate) fn main() -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
