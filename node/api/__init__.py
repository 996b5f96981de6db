"""The Docker Engine API on a unix socket (`dockyard engine`), over the same engine and stores
as the CLI, so the docker CLI, docker compose and the docker SDK drive the node unchanged.

    server.py        the application, the socket (0660 root:dockyard), `serve`
    versions.py      /_ping negotiation, /v1.xx/ prefixes (1.24 up; 1.44 advertised)
    errors.py        docker's {"message"} errors with moby's codes; body/query helpers
    backend/         the ONE adapter: every call into node.engine/images/network/build
    launcher.py      a single-threaded process that forks workers (start, exec) for the server
    streams.py       hijacked connections (Upgrade: tcp, 101) and the 8-byte frames
    container_spec.py  create bodies -> run options; records -> inspect/ps JSON
    containers.py  container_io.py  execs.py  archive.py  images.py  networks.py  volumes.py
    system.py  events.py  build.py   one module per resource
"""
