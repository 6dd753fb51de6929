"""The page's CSS and <head> additions (layout of the panels, grids and tables at desktop, tablet and phone
widths). Static text: ``app.py`` passes it to ``launch``."""

CSS = """
#disclaimer {font-weight: 600; color: var(--body-text-color-subdued);}
#disclaimer p, #title h1 {margin-bottom: 0;}
#panels {display: grid !important; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px;}
#panels > div {min-width: 0 !important;}
/* The four panels stay side by side down to 900 px (at 1024x768 a 2x2 grid started them at y = 529 and ran (a), (b)
   past the bottom, (c), (d) on the second screen); 2x2 below that, one column on a phone. */
@media (max-width: 900px) {#panels {grid-template-columns: repeat(2, minmax(0, 1fr));}}
.panel-title p {margin: 0; font-size: 0.9em;}
/* Below 1100 px the header and the inputs are tighter, so that the panels' row fits on a 768 px screen. */
@media (max-width: 1100px) {
  #title h1 {font-size: 1.5em;}
  #status {min-height: 0 !important;}
  #status p {font-size: 0.92em;}
  .panel-title p {font-size: 0.82em;}
}
/* The upload's label stops short of the file's Clear button and wraps (it was cut to "...or DICOI" at 1024 px). */
#upload > label {max-width: calc(100% - 44px); white-space: normal;}
/* The examples' label sits above the thumbnails, in the flow (Gradio floats it over the scrolling grid, where it
   covered scrolled thumbnails); the grid takes the rest of the block's height. */
#examples {display: flex !important; flex-direction: column;}
#examples > label.float {position: static; flex: none; align-self: flex-start; margin: 0 0 4px 0;}
#examples > .gallery-container {flex: 1 1 0; min-height: 0; height: auto !important;}
#examples .grid-container {padding-top: 0 !important;}
/* Its "Download all" button would float over the first row now: there is nothing to download in a picker. */
#examples .grid-wrap > .icon-button-wrapper {display: none;}
#annotator {max-width: 560px; margin: 0 auto;}
#truth-result table {margin: 0.3em 0;}
#summary table {margin: 0.3em 0;}
/* An example's caption goes under its thumbnail, never over it (at most three lines, then an ellipsis). */
#examples .thumbnail-item {aspect-ratio: auto !important; display: flex; flex-direction: column; height: auto;}
#examples .thumbnail-item img {height: 96px !important; width: 100%; flex: none; object-fit: contain;}
#examples .caption-label {position: static; max-width: none; width: 100%; border: none; border-radius: 0;
  white-space: normal; line-height: 1.2; max-height: 3.6em; font-size: 11px; padding: 2px 4px; overflow: hidden;
  display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical;}
.side-grid {display: grid !important; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px;}
.side-grid > div {min-width: 0 !important;}
@media (max-width: 1100px) {.side-grid {grid-template-columns: repeat(2, minmax(0, 1fr));}}
/* The audit's case pictures are two panels side by side (2:1): 4:3 cells, the picture at the top, the caption below. */
#audit-gallery .thumbnail-item {aspect-ratio: 4 / 3 !important;}
#audit-gallery .thumbnail-item img {object-position: top;}
#audit-gallery .caption-label {white-space: normal; line-height: 1.2; max-height: 3.6em; font-size: 13px;}
@media (max-width: 1100px) {#audit-gallery .grid-container {grid-template-columns: repeat(2, minmax(0, 1fr)) !important;}
  #method-grid {grid-template-columns: repeat(3, minmax(0, 1fr));}}
/* Report tables: numbers with their CIs stay on one line; a table wider than the page scrolls sideways. */
.wide-tables table, #audit-status table, #audit-progress table {display: block; overflow-x: auto; max-width: 100%;}
#audit-status th, #audit-status td, #audit-progress th, #audit-progress td {white-space: nowrap;}
.wide-tables th, .wide-tables td {white-space: nowrap; word-break: normal !important; overflow-wrap: normal !important;}
/* A phone: the upload, a short strip of examples, the panels, the summary; the settings come after them. */
@media (max-width: 700px) {
  #inputs, #model-col {display: contents !important;}
  #page > * {order: 10;}
  #upload-col {order: 1;}
  #gallery-col {order: 2;}
  #status {order: 3;}
  #panels {order: 4; grid-template-columns: minmax(0, 1fr);}
  #results {order: 5;}
  #source-col, #cam-col {order: 6;}
  #examples {height: 200px !important; max-height: 200px;}
  #examples .grid-container {grid-template-columns: repeat(2, minmax(0, 1fr)) !important;}
  #examples .caption-label {font-size: 12px;}
  #title h1 {font-size: 1.3em;}
  .side-grid, #method-grid {grid-template-columns: minmax(0, 1fr);}
  #audit-gallery .grid-container {grid-template-columns: minmax(0, 1fr) !important;}
}
"""
#: Toasts live outside the app's container, which Gradio scopes ``css`` to: on a phone they go to the bottom, off
#: the title and the upload.
HEAD = "<style>@media (max-width: 700px) {.toast-wrap {top: auto !important; bottom: 12px !important;}}</style>"
