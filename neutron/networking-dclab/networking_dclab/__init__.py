"""Neutron ML2 mechanism driver for dclab (see README.md)."""
