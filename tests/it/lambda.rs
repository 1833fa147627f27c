//! The Lambda handler under cargo-lambda (owned by the serverless work).
