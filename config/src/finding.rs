//! Findings: one positioned message per problem, printed by `weft check` as
//! `PATH:LINE:COL: error|warning[CODE] KIND NAMESPACE/NAME: message`.

use std::fmt;
use std::path::PathBuf;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Information only (e.g. a kind weft skips).
    Note,
    /// Loaded, but probably not what was meant.
    Warning,
    /// The object (or file) was rejected.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One problem found in the configuration, with its position (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file, as given (or as found while walking a folder).
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Error, warning or note.
    pub severity: Severity,
    /// `istioctl analyze` style code (`IST0101`, `IST0106`) when there is one.
    pub code: Option<&'static str>,
    /// The object's kind, when known.
    pub kind: Option<String>,
    /// The object's namespace, when known.
    pub namespace: Option<String>,
    /// The object's name, when known.
    pub name: Option<String>,
    /// What is wrong (no trailing period).
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.severity
        )?;
        if let Some(code) = self.code {
            write!(f, "[{code}]")?;
        }
        match (&self.kind, &self.namespace, &self.name) {
            (Some(kind), Some(namespace), Some(name)) => write!(f, " {kind} {namespace}/{name}")?,
            (Some(kind), None, Some(name)) => write!(f, " {kind} {name}")?,
            (Some(kind), _, None) => write!(f, " {kind}")?,
            (None, _, _) => {}
        }
        write!(f, ": {}", self.message)
    }
}

/// The result of [`crate::check`]: every finding, sorted by path, line and column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    findings: Vec<Finding>,
}

impl CheckReport {
    /// Sorts the findings (path, line, column, most severe first) and wraps them.
    pub fn new(mut findings: Vec<Finding>) -> Self {
        sort_findings(&mut findings);
        CheckReport { findings }
    }

    /// All findings in order.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Whether any finding is an error (`weft check` then exits 1).
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The error findings.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// How many findings have this severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// The findings, by value.
    pub fn into_findings(self) -> Vec<Finding> {
        self.findings
    }
}

pub(crate) fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (&a.path, a.line, a.column, std::cmp::Reverse(a.severity)).cmp(&(
            &b.path,
            b.line,
            b.column,
            std::cmp::Reverse(b.severity),
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding() -> Finding {
        Finding {
            path: PathBuf::from("mesh/vs.yaml"),
            line: 12,
            column: 7,
            severity: Severity::Error,
            code: Some("IST0106"),
            kind: Some("VirtualService".into()),
            namespace: Some("default".into()),
            name: Some("reviews".into()),
            message: "total destination weight = 0".into(),
        }
    }

    #[test]
    fn displays_in_design_format() {
        assert_eq!(
            finding().to_string(),
            "mesh/vs.yaml:12:7: error[IST0106] VirtualService default/reviews: total destination weight = 0"
        );
        let syntax = Finding {
            severity: Severity::Error,
            code: None,
            kind: None,
            namespace: None,
            name: None,
            message: "did not find expected key".into(),
            ..finding()
        };
        assert_eq!(
            syntax.to_string(),
            "mesh/vs.yaml:12:7: error: did not find expected key"
        );
        let note = Finding {
            severity: Severity::Note,
            code: None,
            kind: Some("Gateway".into()),
            ..finding()
        };
        assert!(
            note.to_string()
                .starts_with("mesh/vs.yaml:12:7: note Gateway default/reviews: ")
        );
    }
}
