//! Typed references to the entities of a snapshot, and the table each kind lives in.
//!
//! An entity is one entry of its table, and a reference can only index a table of its own
//! kind: a resource server's `realm` is a [`RealmRef`], never a bare number that could be
//! used on the wrong list.

use std::marker::PhantomData;

/// A reference to an entry of a [`Table`]: its position, typed by the kind of entry.
pub trait EntityRef: Copy {
    /// The reference to position `i`.
    fn at(i: usize) -> Self;
    /// The position it refers to.
    fn index(self) -> usize;
}

macro_rules! entity_ref {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u32);

        impl EntityRef for $name {
            fn at(i: usize) -> Self {
                // A snapshot never holds 2^32 entities of one kind: configuration sizes are
                // bounded long before that.
                Self(u32::try_from(i).unwrap_or(u32::MAX))
            }

            fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

entity_ref!(
    /// A realm of a snapshot.
    RealmRef
);
entity_ref!(
    /// A resource server of a snapshot.
    ResourceServerRef
);
entity_ref!(
    /// A protected resource of a snapshot.
    ResourceRef
);
entity_ref!(
    /// A client of a snapshot's embedded issuers.
    ClientRef
);

/// The entries of one kind, indexed by their typed reference.
#[derive(Debug, Clone)]
pub struct Table<R, T> {
    items: Vec<T>,
    _ref: PhantomData<R>,
}

impl<R, T> Default for Table<R, T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            _ref: PhantomData,
        }
    }
}

impl<R: EntityRef, T> Table<R, T> {
    /// Adds an entry; returns its reference.
    pub fn push(&mut self, item: T) -> R {
        self.items.push(item);
        R::at(self.items.len() - 1)
    }

    /// The entry `r` refers to, if this table has it.
    pub fn get(&self, r: R) -> Option<&T> {
        self.items.get(r.index())
    }

    /// The entry `r` refers to, mutably.
    pub fn get_mut(&mut self, r: R) -> Option<&mut T> {
        self.items.get_mut(r.index())
    }

    /// Every entry, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    /// Every entry, mutably.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.items.iter_mut()
    }

    /// Every entry with its reference.
    pub fn entries(&self) -> impl Iterator<Item = (R, &T)> {
        self.items.iter().enumerate().map(|(i, t)| (R::at(i), t))
    }

    /// The first entry `f` accepts, with its reference.
    pub fn find(&self, mut f: impl FnMut(&T) -> bool) -> Option<(R, &T)> {
        self.entries().find(|(_, t)| f(t))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<R: EntityRef, T> std::ops::Index<R> for Table<R, T> {
    type Output = T;

    /// NB: references are only made by the table they index (a snapshot's own), so an out of
    /// range one is a bug; it panics like a slice would.
    fn index(&self, r: R) -> &T {
        &self.items[r.index()]
    }
}

impl<R, T> FromIterator<T> for Table<R, T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self {
            items: iter.into_iter().collect(),
            _ref: PhantomData,
        }
    }
}

impl<'a, R: EntityRef, T> IntoIterator for &'a Table<R, T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}
