# Varnish in front of the demo origin: the peer edgeproxy is compared against.
# Placeholders (names in single braces) are filled by bench/peers/__init__.py. The builtin VCL stays in force
# (requests with a Cookie or Authorization header pass), so only what follows is changed.
vcl 4.1;

backend origin {{
    .host = "127.0.0.1";
    .port = "{origin_port}";
}}

sub vcl_deliver {{
    # RFC 9211 Cache-Status, so the load generator reads hits the same way for every target.
    if (obj.hits > 0) {{
        set resp.http.Cache-Status = "varnish; hit";
    }} else {{
        set resp.http.Cache-Status = "varnish; fwd=miss";
    }}
}}
