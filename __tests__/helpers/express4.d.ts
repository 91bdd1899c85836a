// Express 4 is installed under an npm alias, beside Express 5; its API is typed like Express's.
declare module 'express4' {
  import express = require('express');
  export = express;
}
