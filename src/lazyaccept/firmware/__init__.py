"""Firmware: the layout every OVMF build shares, TDVF (TDX) and OVMF for SEV-SNP."""
