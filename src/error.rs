//! The library's error type: every failure a user can cause (bad model, bad input, bad arguments)
//! is a variant here with enough context to act on, never a panic.

use std::path::PathBuf;

/// Errors raised by the robustcert library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a valid ONNX protobuf message.
    #[error("malformed ONNX protobuf: {0}")]
    Protobuf(String),
    /// One or more operators have no implementation; all of them are listed at once.
    #[error("{}", unsupported_message(.0))]
    UnsupportedOps(Vec<UnsupportedOp>),
    /// The model is structurally invalid or uses a feature we refuse (external data, symbolic shapes...).
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// A node could not be imported or evaluated; `node` names it.
    #[error("node '{node}' ({op}): {message}")]
    Node { node: String, op: String, message: String },
    /// Tensor shapes do not agree.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A tensor holds NaN or infinity where a finite number is required.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// A tensor or allocation would exceed the configured limits.
    #[error("too large: {0}")]
    TooLarge(String),
    /// A data file (npy, npz, image) could not be read.
    #[error("data file {path}: {message}")]
    Data { path: PathBuf, message: String },
    /// Invalid argument passed to a library function.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A key is malformed, of an unsupported algorithm, or of the wrong kind (e.g. a private key
    /// where a public one is expected).
    #[error("key: {0}")]
    Key(String),
    /// A signed certificate does not verify: bad signature, other key, tampered bytes, or a model
    /// or data file other than the one it names.
    #[error("certificate verification failed: {0}")]
    Verification(String),
    /// A certificate could not be built (inconsistent results, non-finite numbers...).
    #[error("certificate: {0}")]
    Certificate(String),
    /// I/O failure with the path involved.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// One operator the importer cannot handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedOp {
    pub op_type: String,
    pub domain: String,
    pub node: String,
    pub opset: i64,
    /// Why it is unsupported when the op type itself is known (e.g. a mode we do not implement).
    pub reason: Option<String>,
}

fn unsupported_message(ops: &[UnsupportedOp]) -> String {
    let mut s = format!("{} unsupported operator node(s):", ops.len());
    for op in ops {
        let dom =
            if op.domain.is_empty() || op.domain == "ai.onnx" { String::new() } else { format!("{}::", op.domain) };
        s.push_str(&format!("\n  - {dom}{} (node '{}', opset {})", op.op_type, op.node, op.opset));
        if let Some(r) = &op.reason {
            s.push_str(&format!(": {r}"));
        }
    }
    s.push_str("\nsupported operators: ");
    s.push_str(&crate::onnx::SUPPORTED_OPS.join(", "));
    s
}

impl Error {
    pub(crate) fn node(node: &str, op: &str, message: impl Into<String>) -> Self {
        Error::Node { node: node.to_string(), op: op.to_string(), message: message.into() }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub(crate) fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Data { path: path.into(), message: message.into() }
    }
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
