//! The CLI's one error type. Every command returns `Result<_, CliError>`;
//! `cli::main` prints it as `llmfs: MESSAGE` and exits with status 1 (the
//! mount(8) helper maps it to mount's own codes).
//!
//! Errors of the lower layers convert with `?` and print as those layers
//! word them; [`Context`] puts what the command was doing in front (a path,
//! an operation), so a message names its file as in `PATH: No such file or
//! directory`.

use std::fmt;
use std::io;

use crate::codec::CodecError;
use crate::container::ContainerError;
use crate::model::ModelError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum CliError {
    /// What was asked cannot be done as asked (conflicting flags, a path
    /// that is not what the command needs, a model that cannot do the
    /// job), said in words.
    Usage(String),
    /// A failure said in words: one a lower layer reports only as text
    /// (the archiver's model loading, the detached mount daemon through its
    /// status pipe), an outside tool's (fusermount), or a check of the
    /// command's own (`bench`: a codec's output did not round-trip).
    Message(String),
    /// A system call or file operation failed.
    Io(io::Error),
    Store(StoreError),
    /// The filesystem core (or the archiver working through it) failed.
    Fs(crate::Error),
    Codec(CodecError),
    Model(ModelError),
    Container(ContainerError),
    /// `source` happened while doing `context`: printed `context: source`.
    Context {
        context: String,
        source: Box<CliError>,
    },
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(msg) | CliError::Message(msg) => f.write_str(msg),
            CliError::Io(e) => write!(f, "{e}"),
            CliError::Store(e) => write!(f, "{e}"),
            CliError::Fs(e) => write!(f, "{e}"),
            CliError::Codec(e) => write!(f, "{e}"),
            CliError::Model(e) => write!(f, "{e}"),
            CliError::Container(e) => write!(f, "{e}"),
            CliError::Context { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::Usage(_) | CliError::Message(_) => None,
            CliError::Io(e) => Some(e),
            CliError::Store(e) => Some(e),
            CliError::Fs(e) => Some(e),
            CliError::Codec(e) => Some(e),
            CliError::Model(e) => Some(e),
            CliError::Container(e) => Some(e),
            CliError::Context { source, .. } => Some(source.as_ref()),
        }
    }
}

impl CliError {
    /// `Err(CliError::Usage(..))` from anything printable.
    pub fn usage(msg: impl Into<String>) -> CliError {
        CliError::Usage(msg.into())
    }

    /// The error of the last system call, after `what` (`fork: ...`).
    pub fn last_os_error(what: &str) -> CliError {
        CliError::Io(io::Error::last_os_error()).context(what)
    }

    /// This error with `context` in front.
    pub fn context(self, context: impl fmt::Display) -> CliError {
        CliError::Context {
            context: context.to_string(),
            source: Box::new(self),
        }
    }
}

/// Adds what was being done to an error on its way up: `.context(path.display())`
/// or, when building the words costs something, `.with_context(|| ...)`.
pub trait Context<T> {
    fn context(self, context: impl fmt::Display) -> Result<T, CliError>;
    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, CliError>;
}

impl<T, E: Into<CliError>> Context<T> for Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T, CliError> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, CliError> {
        self.map_err(|e| e.into().context(context()))
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Io(e)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError::Store(e)
    }
}

impl From<crate::Error> for CliError {
    fn from(e: crate::Error) -> Self {
        CliError::Fs(e)
    }
}

impl From<CodecError> for CliError {
    fn from(e: CodecError) -> Self {
        CliError::Codec(e)
    }
}

impl From<ModelError> for CliError {
    fn from(e: ModelError) -> Self {
        CliError::Model(e)
    }
}

impl From<ContainerError> for CliError {
    fn from(e: ContainerError) -> Self {
        CliError::Container(e)
    }
}

/// The archiver's model loading reports its errors as text.
impl From<String> for CliError {
    fn from(msg: String) -> Self {
        CliError::Message(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_goes_in_front_of_the_lower_layers_words() {
        let e: Result<(), io::Error> = Err(io::Error::from_raw_os_error(libc::ENOENT));
        let e = e.context("/x/model.onnx").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "/x/model.onnx: {}",
                io::Error::from_raw_os_error(libc::ENOENT)
            )
        );
        let e = e.context("mounting /mnt");
        assert!(e.to_string().starts_with("mounting /mnt: /x/model.onnx: "));
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn usage_and_relayed_messages_print_as_they_are() {
        assert_eq!(CliError::usage("give one").to_string(), "give one");
        assert_eq!(
            CliError::from("daemon said".to_string()).to_string(),
            "daemon said"
        );
    }
}
