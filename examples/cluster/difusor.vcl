vcl 4.1;
# Varnish 7 in front of difusor (docs/cluster.md): a cache tier for a CDN to pull from, or
# for visitors when it stands on the public port. It never stores what difusor says must not
# be stored, and it answers from its store only after asking the origin: every stored file is
# revalidated on every request more than a millisecond after the last (If-None-Match → 304,
# a few hundred bytes between the two), so no visitor receives a file of an earlier corte
# once the nodes serve the new one. What it saves is the origin's bandwidth, not its
# requests.
#
# Run: varnishd -a :6081 -f /etc/varnish/difusor.vcl -s malloc,1g
#
# What it does, and the tests prove (tests/cluster.rs):
# - `/json/main.json` is never stored: every request for it reaches a node;
# - other files are stored fresh for one millisecond (`ttl`) and kept for a day (`keep`)
#   for their ETag: each request is a conditional request to the origin, answered 304 by
#   the node when the file did not change;
# - a 503 (the embargo page, the institute's notice, no node up) and any answer marked
#   `no-store` or `private` is never stored;
# - while no node answers (HAProxy's /balancer-health fails), stored files are served for as
#   long as the origin's `stale-if-error` allows (the `stale_if_error` setting);
# - `BAN` or `PURGE` from a node (its `purge_url` and `purge_method`: `BAN /` with
#   `X-Ban-Url: .` after each corte and each notice change) removes every stored file whose
#   path matches the regular expression in `X-Ban-Url`; without that header, `BAN` removes
#   the paths that begin with the request's path and `PURGE` the one path it names. Only
#   the nodes may send either.

import std;

# HAProxy on this machine (examples/cluster/haproxy.cfg): it balances the nodes and knows
# which are up; Varnish asks it whether any is.
backend balancer {
    .host = "127.0.0.1";
    .port = "80";
    .connect_timeout = 1s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 10s;
    .probe = {
        .url = "/balancer-health";
        .interval = 1s;
        .timeout = 1s;
        .window = 3;
        .threshold = 2;
    }
}

# The difusor nodes: each sends a purge after each corte it makes live.
acl difusor_nodes {
    "127.0.0.1";
    "10.0.0.1";
    "10.0.0.2";
    "10.0.0.3";
}

sub vcl_recv {
    if (req.method == "BAN" || req.method == "PURGE") {
        if (client.ip !~ difusor_nodes) {
            return (synth(403, "Forbidden"));
        }
        if (req.method == "PURGE" && !req.http.X-Ban-Url) {
            return (purge);
        }
        if (req.http.X-Ban-Url) {
            ban("obj.http.X-Url ~ " + req.http.X-Ban-Url);
        } else {
            ban("obj.http.X-Url ~ ^" + req.url);
        }
        return (synth(200, "Banned"));
    }
    if (req.method != "GET" && req.method != "HEAD") {
        # difusor answers every other method itself (405, OPTIONS).
        return (pass);
    }
    # Results are public: a portal's cookies must not make each visitor's copy private.
    unset req.http.Cookie;
    unset req.http.Authorization;
    # R4.7: the file every open page re-reads is never answered from the store.
    if (req.url ~ "^/json/main\.json(\?.*)?$") {
        return (pass);
    }
    # A stored copy past its freshness (1 ms) is used only to revalidate, unless no node
    # answers.
    if (std.healthy(req.backend_hint)) {
        set req.grace = 0s;
    }
    # Every request revalidates on its own: none waits behind another's revalidation.
    set req.hash_ignore_busy = true;
    return (hash);
}

sub vcl_backend_response {
    # The path, for bans the ban lurker can apply in the background.
    set beresp.http.X-Url = bereq.url;
    if (bereq.uncacheable) {
        return (deliver);
    }
    if (beresp.status >= 500 || beresp.http.Cache-Control ~ "(?i)no-store|private") {
        # Never stored. The marker (hit-for-miss, 1 s) only lets the next requests go to the
        # origin at once instead of waiting for this one.
        set beresp.ttl = 1s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    # Stored, fresh for one millisecond only: every later request revalidates it with its
    # ETag. (Not 0s: Varnish never looks up an object whose ttl is 0, so it could not
    # revalidate it and would fetch the whole file each time.)
    set beresp.ttl = 1ms;
    set beresp.keep = 24h;
    # Served stale only while no node answers, and only as long as the origin allows.
    if (beresp.http.Cache-Control ~ "stale-if-error=[0-9]+") {
        set beresp.grace = std.duration(regsub(beresp.http.Cache-Control, "^.*stale-if-error=([0-9]+).*$", "\1s"), 0s);
    } else {
        set beresp.grace = 0s;
    }
    return (deliver);
}

sub vcl_deliver {
    unset resp.http.X-Url;
}
