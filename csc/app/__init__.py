"""What the `obsq` commands do, each given a typed options object (the parsing is `obsq.csc.cli`'s).

Commands with a home of their own live there (`obsq.csc.weekly`, `obsq.csc.observatory`,
`obsq.csc.bench`); the rest are here, one module per command group.
"""
