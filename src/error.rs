//! Diagnostics with source positions, shared by every layer that reads user input.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A position in a user's file (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub file: Arc<PathBuf>,
    pub line: usize,
    pub col: usize,
}

impl Span {
    pub fn new(file: Arc<PathBuf>, line: usize, col: usize) -> Self {
        Span { file, line, col }
    }

    /// A span for a whole file, when no finer position is known.
    pub fn file_only(file: &Path) -> Self {
        Span {
            file: Arc::new(file.to_path_buf()),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.col) {
            (0, _) => write!(f, "{}", self.file.display()),
            (l, 0) => write!(f, "{}:{}", self.file.display(), l),
            (l, c) => write!(f, "{}:{}:{}", self.file.display(), l, c),
        }
    }
}

/// Why a run stops: decides the process exit code (Ansible's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad playbook, inventory, template or variable file: exit 4 like Ansible's parser errors.
    Parse,
    /// Bad command-line options: exit 5.
    Options,
    /// Anything else that stops orch itself: exit 1.
    Runtime,
}

impl ErrorKind {
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Parse => 4,
            ErrorKind::Options => 5,
            ErrorKind::Runtime => 1,
        }
    }
}

/// An error for a human: what went wrong, where, and what to do about it.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub kind: ErrorKind,
    pub message: String,
    pub span: Option<Span>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn parse(message: impl Into<String>, span: Option<Span>) -> Self {
        Diagnostic {
            kind: ErrorKind::Parse,
            message: message.into(),
            span,
            hint: None,
        }
    }

    pub fn options(message: impl Into<String>) -> Self {
        Diagnostic {
            kind: ErrorKind::Options,
            message: message.into(),
            span: None,
            hint: None,
        }
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Diagnostic {
            kind: ErrorKind::Runtime,
            message: message.into(),
            span: None,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_span(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    /// Renders the error with the offending source line and a caret, like a compiler.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match &self.span {
            Some(span) => out.push_str(&format!("ERROR: {}: {}\n", span, self.message)),
            None => out.push_str(&format!("ERROR: {}\n", self.message)),
        }
        if let Some(span) = &self.span {
            if let Some(line) = source_line(&span.file, span.line) {
                let num = span.line.to_string();
                let pad = " ".repeat(num.len());
                out.push_str(&format!(" {pad} |\n {num} | {line}\n"));
                if span.col > 0 {
                    let caret_pad: String = line
                        .chars()
                        .take(span.col - 1)
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect();
                    out.push_str(&format!(" {pad} | {caret_pad}^\n"));
                }
            }
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("  hint: {hint}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.span {
            Some(span) => write!(f, "{}: {}", span, self.message)?,
            None => write!(f, "{}", self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

fn source_line(file: &Path, line: usize) -> Option<String> {
    if line == 0 {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().nth(line - 1).map(|l| l.to_string())
}

/// The closest candidate to `word`, for "did you mean" hints.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
