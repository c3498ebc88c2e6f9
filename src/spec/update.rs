//! How layers of a spec merge: key by key, a key set in the newer layer wins. One trait and one
//! macro for every table.

/// Layers merge key by key: a key set in `other` replaces the one in `self`.
pub(super) trait Update {
    fn update(&mut self, other: Self);
}

impl<T: Update> Update for Option<T> {
    fn update(&mut self, other: Self) {
        match (self.as_mut(), other) {
            (Some(mine), Some(theirs)) => mine.update(theirs),
            (None, Some(theirs)) => *self = Some(theirs),
            (_, None) => {}
        }
    }
}

/// Implements [`Update`] for a table: each leaf key set in `other` wins, and the sub-tables
/// after `tables` merge key by key in turn.
macro_rules! update_leaves {
    ($ty:ty { $($field:ident),* $(,)? } $(tables { $($table:ident),* $(,)? })?) => {
        impl Update for $ty {
            fn update(&mut self, other: Self) {
                $(if other.$field.is_some() { self.$field = other.$field; })*
                $($(self.$table.update(other.$table);)*)?
            }
        }
    };
}

pub(super) use update_leaves;
