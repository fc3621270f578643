//! The live site: which [`Site`] visitors are served now.
//!
//! Two handles onto one atomic pointer, made together by [`live`]:
//! - [`Live`], cloned freely into the HTTP server, the admin listener and reports: it can
//!   only load the current site, or wait for the next one ([`Live::swaps`]). A reader keeps
//!   the site it loaded for its whole response, so a response is served entirely from one
//!   corte (invariant 1).
//! - [`Swap`], the only way to change it, held by the publisher alone: it is not `Clone`,
//!   so there is one writer by construction.
//!
//! Every store is announced, after the pointer has changed, to every [`Live::swaps`]
//! receiver (those that must act once a corte is live: the purge of caches in front). Nothing
//! waits for them: the store never blocks, and a receiver that falls behind sees only the
//! latest change.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::Site;

/// The pointer both handles share, and the announcement of its changes.
struct Shared {
    site: ArcSwap<Site>,
    /// The publication sequence number of the corte live now, sent after each store.
    swapped: watch::Sender<Option<i64>>,
}

/// Reads the live site; cannot change it.
#[derive(Clone)]
pub(crate) struct Live(Arc<Shared>);

impl Live {
    /// The site live now, held for as long as the caller keeps it.
    pub(crate) fn load(&self) -> Arc<Site> {
        self.0.site.load_full()
    }

    /// A receiver told of every site made live from now on: its value is the live corte's
    /// publication sequence number. The site live when it is made counts as seen.
    pub(crate) fn swaps(&self) -> watch::Receiver<Option<i64>> {
        self.0.swapped.subscribe()
    }
}

/// Makes a site live: the one writer.
pub(crate) struct Swap(Arc<Shared>);

impl Swap {
    /// The site live now.
    pub(crate) fn current(&self) -> Arc<Site> {
        self.0.site.load_full()
    }

    /// Makes `site` live in one pointer store; readers that loaded the previous one keep it.
    /// Its files' dates are first weighed against the copies visitors may hold
    /// ([`Site::dated_after`]). Then tells every [`Live::swaps`] receiver.
    pub(crate) fn store(&self, site: Site) {
        let seq = site.corte().map(|c| c.seq);
        let site = site.dated_after(&self.current());
        self.0.site.store(Arc::new(site));
        self.0.swapped.send_replace(seq);
    }
}

/// The two handles onto a live site that starts as `initial`.
pub(crate) fn live(initial: Site) -> (Live, Swap) {
    let seq = initial.corte().map(|c| c.seq);
    let shared = Arc::new(Shared {
        site: ArcSwap::from_pointee(initial),
        swapped: watch::Sender::new(seq),
    });
    (Live(shared.clone()), Swap(shared))
}
