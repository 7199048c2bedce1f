//! Support for the code `export_filter!` expands to inside filter crates; not
//! part of the public API.

use crate::Filter;

/// Lets the native build of `export_filter!` reject a type that is not a
/// [`Filter`] at the same place the wasm build would.
pub const fn assert_filter<F: Filter>() {}

#[cfg(target_arch = "wasm32")]
pub use guest::*;

#[cfg(target_arch = "wasm32")]
mod guest {
    use std::cell::RefCell;

    use crate::{Filter, Message, Verdict, backend, log};

    pub use wit_bindgen::rt;

    // Generated code: its lowering helpers take one argument per flattened
    // field, which no one reads or maintains by hand.
    #[allow(clippy::too_many_arguments)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../wit/v0",
            world: "filter",
            pub_export_macro: true,
            default_bindings_module: "plugin_sdk::__private::bindings",
            runtime_path: "plugin_sdk::__private::rt",
        });
    }

    pub use bindings::Guest;
    pub use bindings::switchboard::filter::types::{
        Message as WitMessage, Rewrite as WitRewrite, Verdict as WitVerdict,
    };

    /// The filter value of this component instance, created on first use so
    /// that instantiation itself never calls the host.
    pub struct Instance<F> {
        filter: RefCell<Option<F>>,
    }

    impl<F: Filter> Instance<F> {
        #[allow(clippy::new_without_default)] // must be const for `thread_local!`
        pub const fn new() -> Self {
            Self {
                filter: RefCell::new(None),
            }
        }

        pub fn handle(&self, message: WitMessage) -> WitVerdict {
            let mut slot = self.filter.borrow_mut();
            let filter = match &mut *slot {
                Some(filter) => filter,
                None => slot.insert(init::<F>()),
            };
            filter.filter(&message.into()).into()
        }
    }

    fn init<F: Filter>() -> F {
        match crate::instantiate::<F>(&backend::config_json()) {
            Ok(filter) => filter,
            Err(err) => {
                // The host reads an error log starting "invalid config: "
                // followed by a trap as one refusal of the config
                // (`CONFIG_ERROR_PREFIX` in the server): keep the two in step.
                log::error(format!("invalid config: {err}"));
                panic!("invalid config: {err}");
            }
        }
    }

    impl From<WitMessage> for Message {
        fn from(m: WitMessage) -> Self {
            Message {
                id: m.id,
                sender: m.sender,
                recipient: m.recipient,
                content: m.content,
                meta: m.meta,
                sent_at_ms: m.sent_at,
            }
        }
    }

    impl From<Verdict> for WitVerdict {
        fn from(v: Verdict) -> Self {
            match v {
                Verdict::Accept => WitVerdict::Accept,
                Verdict::Rewrite { content, meta } => {
                    WitVerdict::Rewrite(WitRewrite { content, meta })
                }
                Verdict::Reject(reason) => WitVerdict::Reject(reason),
            }
        }
    }
}
