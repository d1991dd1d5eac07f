"""Real Nostr participants for tests and `serbero demo`: a loopback relay, Mostro, parties, solvers, an LLM.

Everything here talks to a real relay over a real socket; nothing stands in for the network.
"""
