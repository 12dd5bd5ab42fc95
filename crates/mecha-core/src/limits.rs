//! Limits every block applies to what an app names, whatever its
//! component: no key or resource id is handed to a backend beyond them
//! (a component may hold a lower limit of its backend's, such as MySQL's
//! 255 characters).

/// The longest key, in bytes: state keys, lock resource ids and the like.
/// (daprd has none; backends slow down or fail on keys of megabytes.)
pub const MAX_KEY_BYTES: usize = 64 * 1024;
