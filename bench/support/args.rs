//! The benches' command lines: options as `--name value` or `--name=value`, `--bench` (which
//! `cargo bench` passes to `harness = false` targets) skipped, `-h`/`--help` asking for the
//! usage. Each bench matches the option names, reads their values and checks its own bounds:
//!
//! ```ignore
//! let mut line = CommandLine::from_env();
//! while let Some(name) = line.next_option()? {
//!     match name.as_str() {
//!         "--clients" => clients = line.number()? as usize,
//!         "--strict" => strict = true,
//!         _ => return Err(line.unknown()),
//!     }
//! }
//! ```

/// Why reading the command line stopped.
#[derive(Debug)]
pub enum ArgError {
    /// `-h` or `--help`.
    Help,
    /// A bad or missing value, an unknown option, a bound not kept: what is wrong, without the
    /// usage.
    Invalid(String),
}

impl ArgError {
    /// What to print: the usage alone for `--help`, else what is wrong and the usage on the
    /// next line.
    pub fn with_usage(self, usage: &str) -> String {
        match self {
            ArgError::Help => usage.to_string(),
            ArgError::Invalid(message) => format!("{message}\n{usage}"),
        }
    }
}

/// The parsed command line; else what is wrong and `usage` on stderr, and exit status 2.
pub fn or_exit<T>(parsed: Result<T, ArgError>, usage: &str) -> T {
    parsed.unwrap_or_else(|e| {
        eprintln!("{}", e.with_usage(usage));
        std::process::exit(2)
    })
}

impl From<String> for ArgError {
    fn from(message: String) -> ArgError {
        ArgError::Invalid(message)
    }
}

impl From<&str> for ArgError {
    fn from(message: &str) -> ArgError {
        ArgError::Invalid(message.to_string())
    }
}

/// The arguments after the program's name, read one option at a time.
pub struct CommandLine<I> {
    rest: I,
    /// The option [`CommandLine::next_option`] returned last.
    name: String,
    /// Its value when it came as `--name=value`.
    inline: Option<String>,
}

impl CommandLine<std::iter::Skip<std::env::Args>> {
    /// This process's arguments.
    pub fn from_env() -> Self {
        CommandLine::new(std::env::args().skip(1))
    }
}

impl<I: Iterator<Item = String>> CommandLine<I> {
    pub fn new(args: I) -> Self {
        CommandLine {
            rest: args,
            name: String::new(),
            inline: None,
        }
    }

    /// The next option's name (the part before `=`); `None` at the end. `--bench` is skipped;
    /// `-h` and `--help` are [`ArgError::Help`].
    pub fn next_option(&mut self) -> Result<Option<String>, ArgError> {
        for arg in self.rest.by_ref() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg, None),
            };
            match name.as_str() {
                "--bench" => continue,
                "-h" | "--help" => return Err(ArgError::Help),
                _ => {}
            }
            self.name = name.clone();
            self.inline = inline;
            return Ok(Some(name));
        }
        Ok(None)
    }

    /// The current option's value: what followed `=`, else the next argument.
    pub fn value(&mut self) -> Result<String, ArgError> {
        self.inline
            .take()
            .or_else(|| self.rest.next())
            .ok_or_else(|| ArgError::Invalid(format!("{} needs a value", self.name)))
    }

    /// The current option's value as a whole number.
    pub fn number(&mut self) -> Result<u64, ArgError> {
        let text = self.value()?;
        text.parse::<u64>()
            .map_err(|e| ArgError::Invalid(format!("{} {text}: {e}", self.name)))
    }

    /// The current option is not one of the bench's.
    pub fn unknown(&self) -> ArgError {
        ArgError::Invalid(format!("unknown argument {}", self.name))
    }
}

/// How this bench was run, for the reports: `cargo bench --bench NAME`, then ` -- ` and its
/// arguments (without the `--bench` cargo adds) if it had any.
pub fn command(bench: &str) -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.is_empty() {
        format!("cargo bench --bench {bench}")
    } else {
        format!("cargo bench --bench {bench} -- {}", args.join(" "))
    }
}
