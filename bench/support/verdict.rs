//! The verdicts a bench ends its report with: one `- PASS ...` or `- FAIL ...` line each.

pub struct Verdict {
    pub pass: bool,
    /// Whether a failure fails the exit status (with `--strict` for the rest bench).
    pub fails_exit: bool,
    pub text: String,
}

impl Verdict {
    /// `- PASS text` or `- FAIL text`.
    pub fn line(&self) -> String {
        format!(
            "- {} {}",
            if self.pass { "PASS" } else { "FAIL" },
            self.text
        )
    }
}

#[derive(Default)]
pub struct Verdicts(pub Vec<Verdict>);

impl Verdicts {
    /// A verdict whose failure fails the exit status.
    pub fn add(&mut self, pass: bool, text: String) {
        self.add_with(pass, true, text);
    }

    pub fn add_with(&mut self, pass: bool, fails_exit: bool, text: String) {
        self.0.push(Verdict {
            pass,
            fails_exit,
            text,
        });
    }

    /// Whether a verdict that fails the exit status failed.
    pub fn failed(&self) -> bool {
        self.0.iter().any(|v| !v.pass && v.fails_exit)
    }

    /// One line each, every line ending with a newline.
    pub fn lines(&self) -> String {
        self.0.iter().map(|v| v.line() + "\n").collect()
    }
}
