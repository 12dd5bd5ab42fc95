//! Limits every block applies to what an app names, whatever its
//! component: no key or resource id is handed to a backend beyond them
//! (a component may hold a lower limit of its backend's, such as MySQL's
//! 255 characters).

/// The longest key, in bytes: state keys, lock resource ids and the like.
/// (daprd has none; backends slow down or fail on keys of megabytes.)
pub const MAX_KEY_BYTES: usize = 64 * 1024;

/// The most items in one bulk request: the items of a state save, the keys
/// of a bulk get or delete, the entries of a bulk publish. (daprd has none;
/// each item costs the runtime about a hundred bytes beyond its own size,
/// so this bounds what a body of `--max-body-size` can make it hold.)
pub const MAX_BULK_ITEMS: usize = 10_000;

/// The most operations in one state transaction; a store may hold fewer
/// (daprd's `ERR_STATE_STORE_TOO_MANY_TRANSACTIONS` for either).
pub const MAX_TRANSACTION_OPERATIONS: usize = 10_000;

/// Refuses a count of items over `limit`, naming it.
pub fn check_count(what: &str, count: usize, limit: usize) -> Result<(), String> {
    if count > limit {
        return Err(too_many(what, count, limit));
    }
    Ok(())
}

/// What a request with `count` items over `limit` is told.
pub fn too_many(what: &str, count: usize, limit: usize) -> String {
    format!("the request has {count} {what}, more than the limit of {limit}")
}
