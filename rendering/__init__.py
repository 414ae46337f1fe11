"""Pictures and pages: masks, saliency maps, overlays, comparison sheets, text HTML."""
