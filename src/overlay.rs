//! Config overlays: a spec layers `base`, a cell's `set` and a profile's `set`, each a partial config.
//! A foundation: the engines declare their configs with [`overlay_config!`], the spec layers them.
//!
//! [`overlay_config!`] declares, from one field list, the resolved config struct and its all-optional
//! overlay twin, so the two can never drift apart. Both deny unknown fields, so a typo in a spec is an
//! error with its line and column (serde_yaml_ng reports them).

/// A partial config that can be layered and then resolved into a complete, validated config.
pub trait Overlay: Clone + Default + serde::de::DeserializeOwned + serde::Serialize {
    type Config: Clone + serde::Serialize;
    /// Fields set in `top` replace those in `self`.
    fn overlay(&mut self, top: &Self);
    /// The complete config, or the names of the fields nobody set.
    fn resolve(&self) -> Result<Self::Config, Vec<&'static str>>;
}

/// Range checks of a resolved config: each failed check keeps a message naming the field and what was
/// expected.
#[derive(Debug, Default)]
pub struct Checks(Vec<String>);

impl Checks {
    pub fn need(&mut self, ok: bool, what: &str) {
        if !ok {
            self.0.push(what.to_string());
        }
    }

    pub fn finish(self) -> Result<(), Vec<String>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// Declares `pub struct $config { fields }` and `pub struct $overlay { Option<fields> }` with [`Overlay`].
#[macro_export]
macro_rules! overlay_config {
    (
        $(#[$meta:meta])*
        pub struct $config:ident / $overlay:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $config {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        #[doc = concat!("Partial [`", stringify!($config), "`]: every field optional, for spec layering.")]
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $overlay {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl $crate::overlay::Overlay for $overlay {
            type Config = $config;
            fn overlay(&mut self, top: &Self) {
                $( if top.$field.is_some() { self.$field = top.$field.clone(); } )*
            }
            fn resolve(&self) -> Result<$config, Vec<&'static str>> {
                let mut missing = Vec::new();
                $( if self.$field.is_none() { missing.push(stringify!($field)); } )*
                if !missing.is_empty() {
                    return Err(missing);
                }
                Ok($config { $( $field: self.$field.clone().expect("checked above"), )* })
            }
        }
    };
}
