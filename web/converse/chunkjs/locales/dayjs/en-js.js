export const __rspack_esm_id = 3537;
export const __rspack_esm_ids = [3537];
export const __webpack_modules__ = {
"./node_modules/dayjs/locale/en.js"(module) {
!function(e,n){ true?module.exports=n():0}(this,(function(){"use strict";return{name:"en",weekdays:"Sunday_Monday_Tuesday_Wednesday_Thursday_Friday_Saturday".split("_"),months:"January_February_March_April_May_June_July_August_September_October_November_December".split("_"),ordinal:function(e){var n=["th","st","nd","rd"],t=e%100;return"["+e+(n[(t-20)%10]||n[t]||n[0])+"]"}}}));

},

};

//# sourceMappingURL=en-js.js.map