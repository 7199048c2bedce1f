//! Drive a filter from native unit tests, against the mock host.
//!
//! ```
//! use plugin_sdk::testing::Harness;
//! use plugin_sdk::{Config, ConfigError, Filter, Message, Verdict};
//!
//! struct Quiet;
//! impl Filter for Quiet {
//!     fn new(_: &Config) -> Result<Self, ConfigError> { Ok(Quiet) }
//!     fn filter(&mut self, m: &Message) -> Verdict {
//!         if m.content.len() > 5 { Verdict::reject("too long") } else { Verdict::Accept }
//!     }
//! }
//!
//! let mut h = Harness::<Quiet>::new("{}");
//! assert!(h.filter(&Message::test("hi")).is_accept());
//! assert_eq!(h.filter_text("hello world").reason(), Some("too long"));
//! ```

use crate::log::Level;
use crate::{ConfigError, Filter, Message, Verdict, backend};

/// One filter instance on a fresh mock host (empty store, clock at a fixed
/// start time, empty log) for the current thread.
pub struct Harness<F> {
    filter: F,
    config_json: String,
}

impl<F: Filter> Harness<F> {
    /// Builds the filter from `config_json` the way the guest would.
    ///
    /// # Panics
    /// When the config is refused; use [`Harness::try_new`] to test that.
    pub fn new(config_json: &str) -> Self {
        Self::try_new(config_json).unwrap_or_else(|err| panic!("filter refused its config: {err}"))
    }

    /// Like [`Harness::new`], returning the config error instead.
    pub fn try_new(config_json: &str) -> Result<Self, ConfigError> {
        backend::reset();
        Ok(Self {
            filter: crate::instantiate(config_json)?,
            config_json: config_json.to_owned(),
        })
    }

    pub fn filter(&mut self, msg: &Message) -> Verdict {
        self.filter.filter(msg)
    }

    /// Filters [`Message::test`]`(content)`.
    pub fn filter_text(&mut self, content: &str) -> Verdict {
        self.filter(&Message::test(content))
    }

    /// Replaces the instance as the host does after a trap or reload: a new
    /// filter from the same config, while store and clock carry on.
    pub fn restart(&mut self) {
        self.filter = crate::instantiate(&self.config_json)
            .unwrap_or_else(|err| panic!("filter refused its config: {err}"));
    }

    pub fn advance_clock(&mut self, ms: u64) {
        backend::set_now(backend::now_ms().saturating_add(ms));
    }

    pub fn set_clock(&mut self, now_ms: u64) {
        backend::set_now(now_ms);
    }

    pub fn now_ms(&self) -> u64 {
        backend::now_ms()
    }

    /// Everything logged on this thread since the harness was built.
    pub fn logs(&self) -> Vec<(Level, String)> {
        backend::logs()
    }

    /// The filter value itself, to inspect its state.
    pub fn inner(&mut self) -> &mut F {
        &mut self.filter
    }
}
