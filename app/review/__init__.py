"""Reviewing candidates: the queue rules and the one decision writer.

session.py     one browser session's review queue: the queue spec in the URL, the card shown, the callbacks
claims.py      which cards are on whose screen, shared by every session of the app process
decisions.py   the one decision writer: every decision the app stores goes through it
"""
