"""The stylesheet of every page: NHS look and feel, no web fonts, no external files.

Colours are the NHS identity palette (NHS Blue #005EB8, Dark Blue #003087, yellow focus #FFEB3B with a black
underline as in the NHS design system), the font stack falls back from Frutiger to system sans fonts. Focus is
always visible for keyboard users; colour is never the only carrier of meaning (badges carry text).
"""

from __future__ import annotations

import hashlib

STYLESHEET = """
:root{--nhs-blue:#005eb8;--nhs-dark-blue:#003087;--nhs-black:#212b32;--nhs-grey-1:#4c6272;--nhs-grey-4:#d8dde0;
--nhs-grey-5:#f0f4f5;--nhs-white:#fff;--nhs-red:#d5281b;--nhs-warm-yellow:#ffb81c;--nhs-green:#007f3b;
--nhs-focus:#ffeb3b;--nhs-purple:#330072}
*{box-sizing:border-box}
html{font-family:Frutiger W01,Frutiger,"Helvetica Neue",Helvetica,Arial,"Liberation Sans",sans-serif;
color:var(--nhs-black);background:var(--nhs-grey-5);font-size:16px;line-height:1.5}
body{margin:0}
a{color:var(--nhs-blue)}a:visited{color:var(--nhs-purple)}a:hover{color:var(--nhs-dark-blue)}
a:focus,button:focus,input:focus,select:focus,summary:focus,[tabindex]:focus{outline:4px solid transparent;
background:var(--nhs-focus);color:var(--nhs-black);box-shadow:0 -2px var(--nhs-focus),0 4px var(--nhs-black);
text-decoration:none}
input:focus,select:focus{box-shadow:inset 0 0 0 2px var(--nhs-black);outline:4px solid var(--nhs-focus);
outline-offset:0;background:var(--nhs-white)}
.skip-link{position:absolute;left:-9999px}.skip-link:focus{left:1rem;top:1rem;z-index:10;padding:.5rem}
header.nhs-header{background:var(--nhs-blue);color:var(--nhs-white)}
.nhs-header__inner{max-width:1280px;margin:0 auto;padding:.75rem 1rem;display:flex;align-items:center;gap:1.5rem;
flex-wrap:wrap}
.nhs-logo{background:var(--nhs-white);color:var(--nhs-blue);font-weight:700;font-size:1.4rem;padding:0 .4rem;
letter-spacing:-.02em;font-style:italic}
.nhs-header__service{color:var(--nhs-white);font-size:1.15rem;font-weight:600;text-decoration:none}
.nhs-header a{color:var(--nhs-white)}
.nhs-header__user{margin-left:auto;font-size:.9rem;display:flex;gap:.75rem;align-items:center}
nav.nhs-nav{background:var(--nhs-dark-blue)}
nav.nhs-nav ul{list-style:none;margin:0 auto;padding:0 1rem;max-width:1280px;display:flex;flex-wrap:wrap;gap:.25rem}
nav.nhs-nav a{display:block;padding:.6rem .8rem;color:var(--nhs-white);text-decoration:none;font-weight:600}
nav.nhs-nav a[aria-current=page]{box-shadow:inset 0 -4px var(--nhs-white)}
nav.nhs-nav a:focus{color:var(--nhs-black)}
main{max-width:1280px;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:2rem;line-height:1.2;margin:0 0 1rem}h2{font-size:1.4rem;margin:1.5rem 0 .75rem}
h3{font-size:1.15rem;margin:1rem 0 .5rem}
.panel{background:var(--nhs-white);border:1px solid var(--nhs-grey-4);padding:1rem 1.25rem;margin:0 0 1rem}
.lede{font-size:1.1rem;color:var(--nhs-grey-1)}
table.nhs-table{border-collapse:collapse;width:100%;background:var(--nhs-white);margin:0 0 1rem}
table.nhs-table caption{text-align:left;font-weight:600;padding:.5rem 0}
table.nhs-table th,table.nhs-table td{border-bottom:1px solid var(--nhs-grey-4);padding:.5rem .6rem;
text-align:left;vertical-align:top}
table.nhs-table th{font-weight:600;background:var(--nhs-grey-5)}
table.nhs-table td.num,table.nhs-table th.num{text-align:right;font-variant-numeric:tabular-nums}
.tag{display:inline-block;border:1px solid currentColor;padding:0 .35rem;font-size:.8rem;font-weight:600;
white-space:nowrap}
.tag--red{color:var(--nhs-red)}.tag--amber{color:#8a5700}.tag--blue{color:var(--nhs-blue)}
.tag--grey{color:var(--nhs-grey-1)}.tag--green{color:var(--nhs-green)}
.muted{color:var(--nhs-grey-1);font-size:.9rem}
.warning{border-left:8px solid var(--nhs-red);padding-left:.75rem}
form.filters{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-end;background:var(--nhs-white);
border:1px solid var(--nhs-grey-4);padding:1rem;margin:0 0 1rem}
label{display:block;font-weight:600;margin-bottom:.25rem}
input[type=text],input[type=password],input[type=number],select{font:inherit;padding:.35rem .5rem;
border:2px solid var(--nhs-black);min-width:10rem;background:var(--nhs-white)}
button,.button{font:inherit;font-weight:600;background:var(--nhs-green);color:var(--nhs-white);border:0;
padding:.5rem 1rem;box-shadow:0 4px #00401e;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:var(--nhs-grey-1);box-shadow:0 4px #263139}
details{background:var(--nhs-white);border:1px solid var(--nhs-grey-4);margin:0 0 .5rem}
details>summary{cursor:pointer;padding:.5rem .75rem;color:var(--nhs-blue);font-weight:600}
details[open]>summary{border-bottom:1px solid var(--nhs-grey-4)}
details>.details__body{padding:.75rem}
.chart{background:var(--nhs-white);border:1px solid var(--nhs-grey-4);padding:.75rem;margin:0 0 1rem}
.chart svg{max-width:100%;height:auto}.chart figcaption{font-weight:600;margin-bottom:.5rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(22rem,1fr));gap:1rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}dl.facts dt{font-weight:600}
dl.facts dd{margin:0}
ol.timeline{list-style:none;padding:0;margin:0;border-left:4px solid var(--nhs-blue)}
ol.timeline li{padding:.25rem 0 .75rem 1rem;position:relative}
.visually-hidden{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
@media print{header.nhs-header,nav.nhs-nav,form.filters{display:none}}
"""

#: a short content hash, so the stylesheet URL changes when the CSS does (long cache lifetime is then safe)
STYLESHEET_VERSION = hashlib.sha256(STYLESHEET.encode()).hexdigest()[:12]
