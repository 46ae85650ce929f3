//! The keys every room kind's table has beside its own settings: its
//! identity mode, whether its room ids are subjects, its `Origin`
//! allow-list and its compression policy (docs/configuration.md).
//!
//! serde cannot flatten a shared struct into a table and still refuse
//! unknown keys in it (nor keep the key path and line of an error), so
//! [`kind_table!`] writes each kind's struct out with the shared fields
//! appended, and gives it accessors to them as one [`KindEdge`].

use switchboard_server::auth::AuthMode;
use switchboard_server::Policy;

/// The shared keys of one kind's table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindEdge {
    /// Identity mode; `None`: the server-wide `auth.mode` (the `clicks`
    /// kind: token).
    pub auth: Option<AuthMode>,
    /// The room id must equal the identity's subject.
    pub room_is_subject: bool,
    /// Origins accepted instead of `origins.allowed`; empty: those.
    pub allowed_origins: Vec<String>,
    /// permessage-deflate policy; `None`: `compression.policy`.
    pub compression: Option<Policy>,
}

/// The shared keys of one kind's table, for flags to override.
pub struct KindEdgeMut<'a> {
    pub auth: &'a mut Option<AuthMode>,
    pub room_is_subject: &'a mut bool,
    pub allowed_origins: &'a mut Vec<String>,
    pub compression: &'a mut Option<Policy>,
}

/// A kind's table: `Name { /// doc \n #[serde(..)] field: Type = default, ... }`,
/// with the shared keys after the kind's own; `Name (room_is_subject = true) { … }`
/// for a kind whose room ids are subjects by default.
macro_rules! kind_table {
    (@or $given:expr; $default:expr) => { $given };
    (@or ; $default:expr) => { $default };
    ($(#[$meta:meta])* $name:ident $((room_is_subject = $subject:expr))? { $($(#[$field_meta:meta])* $field:ident : $ty:ty = $default:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
            /// Identity mode of this kind; unset: `auth.mode`.
            #[serde(with = "crate::parsed::optional", skip_serializing_if = "Option::is_none")]
            pub auth: Option<switchboard_server::auth::AuthMode>,
            /// The room id must equal the identity's subject.
            pub room_is_subject: bool,
            /// Origins this kind accepts instead of `origins.allowed`.
            #[serde(deserialize_with = "crate::edge_settings::origin_list")]
            pub allowed_origins: Vec<String>,
            /// permessage-deflate policy; unset: `compression.policy`.
            #[serde(with = "crate::parsed::optional", skip_serializing_if = "Option::is_none")]
            pub compression: Option<switchboard_server::Policy>,
        }

        impl Default for $name {
            fn default() -> $name {
                $name {
                    $($field: $default,)*
                    auth: None,
                    room_is_subject: kind_table!(@or $($subject)?; false),
                    allowed_origins: Vec::new(),
                    compression: None,
                }
            }
        }

        impl $name {
            /// The shared keys.
            pub fn edge(&self) -> $crate::kind_table::KindEdge {
                $crate::kind_table::KindEdge {
                    auth: self.auth,
                    room_is_subject: self.room_is_subject,
                    allowed_origins: self.allowed_origins.clone(),
                    compression: self.compression,
                }
            }

            /// The shared keys, to override.
            pub fn edge_mut(&mut self) -> $crate::kind_table::KindEdgeMut<'_> {
                $crate::kind_table::KindEdgeMut {
                    auth: &mut self.auth,
                    room_is_subject: &mut self.room_is_subject,
                    allowed_origins: &mut self.allowed_origins,
                    compression: &mut self.compression,
                }
            }
        }
    };
}

pub(crate) use kind_table;
