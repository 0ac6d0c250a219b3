"""Flowersec tunnel: the untrusted rendezvous daemon and its issuer tools."""
