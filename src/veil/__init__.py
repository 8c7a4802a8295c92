"""Veil: find faces and licence plates in photos and videos, and obscure them."""
