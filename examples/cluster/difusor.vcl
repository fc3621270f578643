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
# - an error (the embargo page is a 503) and any answer marked `no-store` or `private` (the
#   institute's notice) is never stored;
# - while no node answers (HAProxy answers its own error, marked `X-Balancer-Error`, or its
#   /balancer-health fails), stored files are served for as long as the origin's
#   `stale-if-error` allows (the `stale_if_error` setting), and `json/main.json` gets a 503
#   that is not stored either;
# - `BAN` or `PURGE` from a node (its `purge_url` and `purge_method`: `BAN /` with
#   `X-Ban-Url: .` and `X-Ban-Host` after each corte and each notice change) removes every
#   stored file whose path matches the regular expression in `X-Ban-Url` and whose host
#   matches the one in `X-Ban-Host` (the nodes' `purge_host`): the other sites this Varnish
#   may hold are left alone. Without `X-Ban-Url`, `BAN` removes the paths of the request's
#   host that begin with the request's path and `PURGE` the one path it names. Only the
#   nodes may send either.

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
            if (!req.http.X-Ban-Host) {
                return (synth(400, "X-Ban-Host missing"));
            }
            ban("obj.http.X-Host ~ " + req.http.X-Ban-Host + " && obj.http.X-Url ~ " + req.http.X-Ban-Url);
        } else {
            ban("obj.http.X-Host == " + req.http.host + " && obj.http.X-Url ~ ^" + req.url);
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
    # answers: HAProxy's /balancer-health fails, or this request found none (vcl_synth).
    if (req.restarts == 0) {
        unset req.http.X-Difusor-Stale;
    }
    if (std.healthy(req.backend_hint) && !req.http.X-Difusor-Stale) {
        set req.grace = 0s;
    } else {
        # As long as each copy's own grace (its stale-if-error) allows.
        set req.grace = 365d;
    }
    # Every request revalidates on its own: none waits behind another's revalidation.
    set req.hash_ignore_busy = true;
    return (hash);
}

sub vcl_backend_response {
    # The host and the path, for bans the ban lurker can apply in the background.
    set beresp.http.X-Host = bereq.http.host;
    set beresp.http.X-Url = bereq.url;
    if (bereq.uncacheable) {
        return (deliver);
    }
    if (beresp.status >= 500) {
        if (bereq.is_bgfetch || beresp.http.X-Balancer-Error) {
            # No node answers (HAProxy says so): the stored copy is kept, never replaced
            # by the error; the visitor's request is tried again on it (vcl_synth).
            return (abandon);
        }
        # difusor's own (the embargo page before publish_start): passed on, never stored.
        set beresp.ttl = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    if (beresp.http.Cache-Control ~ "(?i)no-store|private") {
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

sub vcl_backend_error {
    # HAProxy itself cannot be reached: as when it has no node.
    return (abandon);
}

sub vcl_synth {
    if (resp.status == 503 && req.restarts == 0 && !req.http.X-Difusor-Stale
        && (req.method == "GET" || req.method == "HEAD")
        && req.url !~ "^/json/main\.json(\?.*)?$") {
        # No node could answer: once more, taking the stored copy if the origin's
        # stale-if-error still allows it.
        set req.http.X-Difusor-Stale = "1";
        return (restart);
    }
    if (resp.status == 503) {
        set resp.http.Content-Type = "text/html; charset=utf-8";
        set resp.http.Cache-Control = "no-store";
        set resp.http.Retry-After = "5";
        synthetic({"<!DOCTYPE html><html lang="es"><head><meta charset="utf-8"><title>PREP</title></head><body><p>El sitio no está disponible en este momento. Intente de nuevo en unos segundos.</p></body></html>"});
        return (deliver);
    }
}

sub vcl_deliver {
    unset resp.http.X-Host;
    unset resp.http.X-Url;
}
