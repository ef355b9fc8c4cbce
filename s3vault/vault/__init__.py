"""The encryption client: put / get / inspect / list / delete encrypted objects."""
