// Builds the clicks dashboard's world map, web/apps/clicks/world.json, from
// npm packages (devDependencies in package.json):
//   world-atlas (Natural Earth 1:110m countries as TopoJSON; ISC, data in
//   the public domain), topojson-client (ISC), d3-geo (ISC) and
//   i18n-iso-countries (MIT, numeric ISO 3166-1 codes to alpha-2).
// The map is projected here, once, with an equirectangular projection, so
// the page needs no geometry library: it draws the countries' SVG paths as
// they are and places a click at lat/lon with the same linear formula
// (x = tx + lon·k, y = ty − lat·k, angles in radians). The binary embeds the
// output; nothing is fetched from anywhere at run time.
//
// Run after `npm ci`:  node scripts/build-map-asset.mjs
// and commit web/apps/clicks/world.json.

import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { feature } from "topojson-client";
import { geoEquirectangular, geoPath } from "d3-geo";

const require = createRequire(import.meta.url);
const countries = require("i18n-iso-countries");
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const topology = JSON.parse(readFileSync(require.resolve("world-atlas/countries-110m.json"), "utf8"));

const WIDTH = 960;
const HEIGHT = 480;
const scale = WIDTH / (2 * Math.PI);
const translate = [WIDTH / 2, HEIGHT / 2];
const projection = geoEquirectangular().scale(scale).translate(translate);
const path = geoPath(projection).digits(1);

const shapes = [];
for (const f of feature(topology, topology.objects.countries).features) {
  const alpha2 = f.id ? countries.numericToAlpha2(f.id) : undefined;
  const d = path(f);
  if (!d) continue;
  // A few territories have no ISO code in Natural Earth (e.g. Kosovo,
  // Northern Cyprus); they are drawn but never shaded.
  shapes.push({ id: alpha2 ?? "", name: f.properties.name, d });
}
shapes.sort((a, b) => a.name.localeCompare(b.name));

const asset = {
  source: "Natural Earth 1:110m admin-0 countries via world-atlas 2 (public domain data); projected with d3-geo",
  width: WIDTH,
  height: HEIGHT,
  projection: { type: "equirectangular", scale, translate },
  countries: shapes,
};
const out = join(root, "web/apps/clicks/world.json");
writeFileSync(out, JSON.stringify(asset) + "\n");
console.log(`wrote ${out}: ${shapes.length} countries, ${JSON.stringify(asset).length} bytes`);
