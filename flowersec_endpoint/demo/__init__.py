"""The reference demo service and the ``flowersec-demo`` command."""
