// recs.<hash>.js: the recommendations module (see recs.js), polling the core for up to 2 s.
import { startRecs } from './recs.js'

startRecs(window, 10, 200)
