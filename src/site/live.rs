//! The live site: which [`Site`] visitors are served now.
//!
//! Two handles onto one atomic pointer, made together by [`live`]:
//! - [`Live`], cloned freely into the HTTP server, the admin listener and reports: it can
//!   only load the current site. A reader keeps the site it loaded for its whole response, so
//!   a response is served entirely from one corte (invariant 1).
//! - [`Swap`], the only way to change it, held by the publisher alone: it is not `Clone`,
//!   so there is one writer by construction.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Site;

/// Reads the live site; cannot change it.
#[derive(Clone)]
pub(crate) struct Live(Arc<ArcSwap<Site>>);

impl Live {
    /// The site live now, held for as long as the caller keeps it.
    pub(crate) fn load(&self) -> Arc<Site> {
        self.0.load_full()
    }
}

/// Makes a site live: the one writer.
pub(crate) struct Swap(Arc<ArcSwap<Site>>);

impl Swap {
    /// The site live now.
    pub(crate) fn current(&self) -> Arc<Site> {
        self.0.load_full()
    }

    /// Makes `site` live in one pointer store; readers that loaded the previous one keep it.
    pub(crate) fn store(&self, site: Site) {
        self.0.store(Arc::new(site));
    }
}

/// The two handles onto a live site that starts as `initial`.
pub(crate) fn live(initial: Site) -> (Live, Swap) {
    let pointer = Arc::new(ArcSwap::from_pointee(initial));
    (Live(pointer.clone()), Swap(pointer))
}
