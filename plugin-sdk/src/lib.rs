//! Write Switchboard message filters in plain Rust.
//!
//! A filter sees every message on its way from one agent to another and
//! decides: let it through, rewrite it, or reject it with a reason the sender
//! reads. Implement [`Filter`], name the type in [`export_filter!`], build for
//! `wasm32-wasip2`, and list the component in `plugins/chain.toml`:
//!
//! ```
//! use plugin_sdk::{export_filter, Config, ConfigError, Filter, Message, Verdict};
//!
//! pub struct NoShouting { max_caps: usize }
//!
//! impl Filter for NoShouting {
//!     fn new(config: &Config) -> Result<Self, ConfigError> {
//!         Ok(Self { max_caps: config.get_or("max_caps", 20)? })
//!     }
//!     fn filter(&mut self, msg: &Message) -> Verdict {
//!         let caps = msg.content.chars().filter(char::is_ascii_uppercase).count();
//!         if caps > self.max_caps { Verdict::reject("please stop shouting") } else { Verdict::Accept }
//!     }
//! }
//! export_filter!(NoShouting);
//! ```
//!
//! The crate must be a `cdylib` (add `rlib` too for unit tests) and depend on
//! this SDK under the name `plugin_sdk`. The host hands each instance its
//! config on the first message; state that must outlive an instance (the host
//! replaces instances after a trap or a reload) belongs in [`store`].
//!
//! Off wasm32 the host functions ([`log`], [`clock`], [`store`]) run against an
//! in-process mock, so [`testing::Harness`] can drive a filter from ordinary
//! `cargo test`.

// The generated bindings name this crate by its public path so that the export
// macro expands correctly inside filter crates; this makes the same path
// resolve inside the SDK too.
extern crate self as plugin_sdk;

#[cfg_attr(target_arch = "wasm32", path = "backend/guest.rs")]
#[cfg_attr(not(target_arch = "wasm32"), path = "backend/mock.rs")]
mod backend;
mod config;
mod message;

pub mod clock;
pub mod keywords;
pub mod log;
pub mod store;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[doc(hidden)]
pub mod __private;

pub use config::{Config, ConfigError};
pub use message::{Message, Verdict};

/// A message filter: one value per component instance.
///
/// The host creates the instance lazily: on the first message it fetches the
/// chain entry's `config` table and calls [`Filter::new`]; every message after
/// that goes to [`Filter::filter`] on the same value until the host replaces
/// the instance (after a trap, a timeout or a hot reload). Keep anything that
/// must survive that in [`store`], not in `self`.
pub trait Filter: Sized + 'static {
    /// Builds the filter from its chain entry's config table.
    ///
    /// Validate everything here (compile regexes, check ranges, reject unknown
    /// keys with [`Config::check_keys`]): an error is logged at error level and
    /// the instance traps, so the host applies the entry's `on_error` policy to
    /// the message instead of running a half-configured filter.
    fn new(config: &Config) -> Result<Self, ConfigError>;

    /// Decides what happens to one message. `msg` already carries the
    /// rewrites of the filters before this one in the chain.
    fn filter(&mut self, msg: &Message) -> Verdict;
}

/// Exports a [`Filter`] implementation as the component's `filter` function.
///
/// Use it once per crate, at the top level. Off wasm32 it only checks that the
/// type implements [`Filter`], so the same crate builds for unit tests.
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static INSTANCE: $crate::__private::Instance<$filter> =
                    const { $crate::__private::Instance::new() };
            }

            struct SwitchboardFilterExport;

            impl $crate::__private::Guest for SwitchboardFilterExport {
                fn filter(message: $crate::__private::WitMessage) -> $crate::__private::WitVerdict {
                    INSTANCE.with(|instance| instance.handle(message))
                }
            }

            $crate::__private::bindings::export!(SwitchboardFilterExport);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::__private::assert_filter::<$filter>();
    };
}

/// Builds a filter from the config JSON exactly as the guest does on its first
/// message, so the harness and the component agree on what a bad config is.
fn instantiate<F: Filter>(config_json: &str) -> Result<F, ConfigError> {
    F::new(&Config::from_json(config_json)?)
}
